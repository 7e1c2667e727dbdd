//! `/v1/profiles` and `/v1/clients/{id}/profiles`: list (paged), read, create, change, delete and refresh
//! access profiles; the masked views (no token, digest, secret or key leaves here but the auth
//! token in the create and refresh answers).

use serde_json::{json, Value};

use super::clients::find_client;
use super::error::{created, no_content_after, ok, with_propagation, ApiError, Handled};
use super::router::PageQuery;
use super::{input, new_id, now_ms, Admin, MAX_PROFILES_PER_CLIENT};
use crate::core::catalog::{Catalog, Kind, Row};
use crate::core::model::{AuthConfig, Profile};
use crate::core::token;

/// The members a profile body may have, on create and on `PATCH`.
const PROFILE_FIELDS: [&str; 6] = [
    "name",
    "collections",
    "auth",
    "active",
    "policy",
    "ip_allow",
];

impl Admin {
    pub(super) async fn list_profiles(
        &self,
        client_id: Option<&str>,
        client_must_exist: bool,
        query: PageQuery,
    ) -> Handled {
        let catalog = self.catalog.lock().await;
        if let (true, Some(id)) = (client_must_exist, client_id) {
            find_client(&catalog, id)?;
        }
        let page = catalog.profiles_page(client_id, query.after.as_deref(), query.limit);
        let items: Vec<Value> = page.items.iter().map(|p| profile_view(p)).collect();
        ok(json!({ "items": items, "next": page.next }))
    }

    pub(super) async fn get_profile(&self, id: &str) -> Handled {
        let catalog = self.catalog.lock().await;
        ok(profile_view(find_profile(&catalog, id)?))
    }

    /// `GET /v1/profiles/{id}/usage` (SPEC §1 `quota`): the quota's limit, what this node
    /// counts as used in the current window (its own requests plus the other nodes' as last
    /// synced, at most a second old), and when the window ends; `"quota": null` without one.
    pub(super) async fn profile_usage(&self, id: &str) -> Handled {
        {
            let catalog = self.catalog.lock().await;
            find_profile(&catalog, id)?;
        }
        let now_ms = now_ms();
        let snapshot = self.registry.snapshot();
        let quota = snapshot
            .profile(id)
            .and_then(|p| p.quota.as_ref())
            .map(|q| {
                let usage = q.usage(now_ms);
                json!({
                    "limit": usage.limit,
                    "used": usage.used,
                    "window_ends_at": crate::door::access_log::rfc3339_ms(usage.window_ends_at_s * 1000)
                        .replace(".000Z", "Z"),
                })
            });
        ok(json!({ "quota": quota }))
    }

    pub(super) async fn create_profile(&self, client_id: &str, body: Value) -> Handled {
        let obj = input::Obj::new(&body, "", &PROFILE_FIELDS)?;
        let name = input::name("name", obj.req_str("name")?)?;
        let Some(auth_value) = obj.raw("auth") else {
            return Err(ApiError::invalid("auth", "is required"));
        };
        let auth = input::auth(auth_value, None)?;
        let active = obj.opt_bool("active")?.unwrap_or(true);
        let policy = match obj.raw("policy") {
            Some(v) => input::policy(v)?,
            None => None,
        };
        let ip_allow = match obj.raw("ip_allow") {
            Some(v) => input::ip_allow(v)?,
            None => Vec::new(),
        };
        let collections_value = obj.raw("collections").cloned();
        let client_id = client_id.to_owned();
        let (profile, raw_token) = self
            .update(move |catalog, rows| {
                find_client(catalog, &client_id)?;
                let collections = match &collections_value {
                    Some(Value::Null) | None => Vec::new(),
                    Some(v) => input::collection_ids(v, |id| catalog.collection(id).is_some())?,
                };
                if catalog.profiles_of_client(&client_id).count() >= MAX_PROFILES_PER_CLIENT {
                    return Err(ApiError::conflict(&format!(
                        "client {client_id} already has {MAX_PROFILES_PER_CLIENT} profiles, the most one client may have"
                    )));
                }
                let new = token::generate().map_err(|_| {
                    ApiError::internal("the operating system's random generator failed")
                })?;
                let profile = Profile {
                    id: new_id()?,
                    client_id,
                    name,
                    collections,
                    auth,
                    active,
                    policy,
                    ip_allow,
                    token: new.stored,
                    previous_token: None,
                    generation: 1,
                };
                rows.put(Row::Profile(profile.clone()));
                Ok((profile, new.raw))
            })
            .await?;
        tracing::info!(profile_id = %profile.id, client_id = %profile.client_id, "profile created");
        created(with_token(profile_view(&profile), raw_token))
    }

    pub(super) async fn patch_profile(&self, id: &str, body: Value) -> Handled {
        // Checked here, before the lock, for a fast 400; `auth` is parsed under the lock because
        // it may keep the current key.
        input::Obj::new(&body, "", &PROFILE_FIELDS)?;
        let id = id.to_owned();
        let (profile, propagation) = self
            .update_revoking(move |catalog, rows| {
                let obj = input::Obj::new(&body, "", &PROFILE_FIELDS)?;
                let mut profile = find_profile(catalog, &id)?.clone();
                if let Some(v) = obj.raw("collections") {
                    profile.collections = match v {
                        Value::Null => Vec::new(),
                        v => input::collection_ids(v, |cid| catalog.collection(cid).is_some())?,
                    };
                }
                if let Some(text) = obj.opt_str("name")? {
                    profile.name = input::name("name", text)?;
                }
                if let Some(value) = obj.raw("auth") {
                    profile.auth = input::auth(value, Some(&profile.auth))?;
                }
                if let Some(active) = obj.opt_bool("active")? {
                    profile.active = active;
                }
                if let Some(value) = obj.raw("policy") {
                    profile.policy = input::policy(value)?;
                }
                if let Some(value) = obj.raw("ip_allow") {
                    profile.ip_allow = input::ip_allow(value)?;
                }
                profile.generation += 1;
                rows.put(Row::Profile(profile.clone()));
                Ok(profile)
            })
            .await?;
        tracing::info!(profile_id = %profile.id, "profile changed");
        ok(with_propagation(profile_view(&profile), propagation))
    }

    pub(super) async fn delete_profile(&self, id: &str) -> Handled {
        let id = id.to_owned();
        let ((), propagation) = self
            .update_revoking(move |catalog, rows| {
                find_profile(catalog, &id)?;
                rows.delete(Kind::Profile, &id);
                tracing::info!(profile_id = %id, "profile deleted");
                Ok(())
            })
            .await?;
        Ok(no_content_after(&propagation))
    }

    pub(super) async fn refresh_profile(&self, id: &str, body: Option<Value>) -> Handled {
        let grace_s = input::grace_s(body.as_ref())?;
        let id = id.to_owned();
        let ((profile, raw_token), propagation) = self
            .update_revoking(move |catalog, rows| {
                let mut profile = find_profile(catalog, &id)?.clone();
                let new = token::generate().map_err(|_| {
                    ApiError::internal("the operating system's random generator failed")
                })?;
                let old = std::mem::replace(&mut profile.token, new.stored);
                profile.previous_token = (grace_s > 0).then(|| crate::core::model::GraceToken {
                    sha256: old.sha256,
                    valid_until_ms: now_ms().saturating_add(grace_s * 1000),
                });
                profile.generation += 1;
                rows.put(Row::Profile(profile.clone()));
                Ok((profile, new.raw))
            })
            .await?;
        tracing::info!(profile_id = %profile.id, grace_s, "profile token refreshed");
        ok(with_propagation(
            with_token(profile_view(&profile), raw_token),
            propagation,
        ))
    }
}

/// The masked view of a profile: no token, no digest, no secret, no key.
pub(super) fn profile_view(profile: &Profile) -> Value {
    let mut view = json!({
        "id": profile.id,
        "client_id": profile.client_id,
        "name": profile.name,
        "collections": profile.collections,
        "auth": auth_view(&profile.auth),
        "active": profile.active,
        "auth_token_masked": token::mask(&profile.token.last4),
        "policy": profile.policy,
        "ip_allow": profile.ip_allow,
        "generation": profile.generation,
    });
    if let (Some(previous), Some(map)) = (&profile.previous_token, view.as_object_mut()) {
        map.insert(
            "previous_token_valid_until_ms".to_owned(),
            json!(previous.valid_until_ms),
        );
    }
    view
}

/// `auth` without `secret` or `public_key`: only whether they are set.
pub(super) fn auth_view(auth: &AuthConfig) -> Value {
    match auth {
        AuthConfig::Token => json!({"type": "token"}),
        AuthConfig::Jwt(jwt) => {
            let mut view = json!({
                "type": "jwt",
                "alg": jwt.alg,
                "required_claims": jwt.required_claims,
                "allowed_issuers": jwt.allowed_issuers,
                "max_lifetime_s": jwt.max_lifetime_s,
                "leeway_s": jwt.leeway_s,
            });
            if let Some(map) = view.as_object_mut() {
                match jwt.alg {
                    crate::core::model::JwtAlg::HS256 => {
                        map.insert("secret_set".to_owned(), json!(jwt.secret.is_some()));
                        map.insert("secret_is_base64".to_owned(), json!(jwt.secret_is_base64));
                    }
                    crate::core::model::JwtAlg::RS256 => {
                        map.insert("public_key_set".to_owned(), json!(jwt.public_key.is_some()));
                    }
                }
            }
            view
        }
    }
}

/// `view` plus the whole auth token: only in the create and refresh responses.
pub(super) fn with_token(mut view: Value, raw_token: String) -> Value {
    if let Some(map) = view.as_object_mut() {
        map.insert("auth_token".to_owned(), Value::String(raw_token));
    }
    view
}

pub(super) fn find_profile<'c>(catalog: &'c Catalog, id: &str) -> Result<&'c Profile, ApiError> {
    catalog
        .profile(id)
        .ok_or_else(|| ApiError::not_found("no such profile"))
}
