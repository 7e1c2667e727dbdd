//! The in-memory registry: an immutable compiled snapshot of the state, swapped atomically on change.
//!
//! [`Snapshot::build`] parses every key and route once; the hot path only reads. Profiles are
//! indexed by the SHA-256 digest of their auth token (and of a previous token in its grace period).

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::core::cache::CallerSlot;
use crate::core::catalog::{Applied, Catalog, Kind, Row};
use crate::core::cidr::Cidr;
use crate::core::compile::{compile_profile, validate_collection_path};
use crate::core::jwt::ClaimRules;
use crate::core::keys::{HmacKey, RsaPublicKey};
use crate::core::model::{JwtAlg, State};
use crate::core::quota::QuotaCounter;
use crate::core::ratelimit::RateLimiter;
use crate::core::route::{split_collection, CompiledCollection, CompiledEndpoint, PathHasher};
use crate::core::sharded::{ShardKey, ShardedMap};
use crate::core::token::{token_digest, TokenDigest};

pub use crate::core::compile::compile_auth;

/// Default clock skew allowed on `exp`/`nbf`.
pub const DEFAULT_LEEWAY_S: u64 = 60;
/// Most access profiles per client.
pub const MAX_PROFILES_PER_CLIENT: usize = 20;

/// Why a state could not be compiled: names the offending field for a 400 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    /// Path of the bad field relative to its object, e.g. `auth.public_key` or `endpoints[0].path`.
    pub field: String,
    /// One human sentence; never contains a secret or key.
    pub message: String,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for BuildError {}

pub(crate) fn build_error(field: impl Into<String>, message: impl Into<String>) -> BuildError {
    BuildError {
        field: field.into(),
        message: message.into(),
    }
}

/// A token digest as a hash-map key: already uniformly random, so its first bytes are the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestKey(pub TokenDigest);

impl ShardKey for DigestKey {
    fn shard(&self) -> usize {
        // Bytes the map's hash (the first eight) does not use.
        usize::from(self.0[8])
    }
}

impl Hash for DigestKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// Passes a [`DigestKey`]'s bytes through as the hash.
#[derive(Default)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// Hasher builder for maps keyed by [`DigestKey`].
pub type BuildDigestHasher = BuildHasherDefault<DigestHasher>;

/// A profile's verification key, parsed once.
pub enum VerifyKey {
    /// HS256 shared secret.
    Hmac(HmacKey),
    /// RS256 public key.
    Rsa(RsaPublicKey),
}

/// How a compiled profile authenticates.
// Profiles live behind an Arc, one per profile: the variant size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum CompiledAuth {
    /// Raw auth token.
    Token,
    /// JWT pinned to one algorithm and key.
    Jwt {
        /// The only accepted `alg`.
        alg: JwtAlg,
        /// The key, parsed once.
        key: VerifyKey,
        /// Claim rules.
        rules: ClaimRules,
    },
}

/// An access profile ready for the hot path.
pub struct CompiledProfile {
    /// Profile id.
    pub id: Box<str>,
    /// Profile name.
    pub name: Box<str>,
    /// Owning client's id.
    pub client_id: Box<str>,
    /// Owning client's name.
    pub client_name: Box<str>,
    /// Changes whenever the profile changes; cached verifications of other generations are void.
    pub generation: u64,
    /// Profile active and client active.
    pub active: bool,
    /// Authentication method and key; shared with the previous snapshot while unchanged.
    pub auth: Arc<CompiledAuth>,
    /// Digests of the tokens that name this profile: the current one, then one in its grace period.
    pub token_digests: Box<[TokenDigest]>,
    /// Indexes of the granted collections, sorted.
    pub collections: Box<[u32]>,
    /// Allowed peer blocks; empty allows every peer.
    pub ip_allow: Box<[Cidr]>,
    /// Rate limiter, kept across snapshots while its configuration is unchanged.
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// Quota counter, kept across snapshots while its window is unchanged.
    pub quota: Option<Arc<QuotaCounter>>,
}

impl CompiledProfile {
    /// Whether the collection at `index` is granted.
    pub fn grants(&self, index: u32) -> bool {
        self.collections.binary_search(&index).is_ok()
    }

    /// Leeway of a JWT profile (0 for token profiles).
    pub fn leeway_s(&self) -> i64 {
        match &*self.auth {
            CompiledAuth::Jwt { rules, .. } => rules.leeway_s,
            CompiledAuth::Token => 0,
        }
    }
}

/// A token digest's entry: the profile, and the deadline of a token in its grace period.
#[derive(Clone)]
pub struct TokenEntry {
    /// The profile the token belongs to.
    pub profile: Arc<CompiledProfile>,
    /// For a previous token kept by `grace_s`: Unix ms after which it stops working.
    pub valid_until_ms: Option<u64>,
    /// The last caller (this token's digest and a `name`) of a JWT naming this token, shared
    /// by the verified-token cache's entries.
    pub callers: Arc<CallerSlot>,
}

impl TokenEntry {
    /// Whether the token still works at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.valid_until_ms.is_none_or(|until| now_ms < until)
    }
}

/// A compiled, immutable view of the state for the hot path. Cloning it is cheap (collections
/// are few; the profile maps are sharded), which is what lets [`Snapshot::apply`] build the next
/// snapshot from this one with only the changed objects compiled.
#[derive(Clone, Default)]
pub struct Snapshot {
    /// Collections by their URL segment: their position in `listed`.
    collections: HashMap<Box<str>, u32, BuildHasherDefault<PathHasher>>,
    /// Every collection, in no particular order; a position holds for this snapshot only.
    listed: Vec<Arc<CompiledCollection>>,
    /// The stable index of each collection id: profiles grant collections by index, and an index
    /// is never given to another collection.
    slots: HashMap<Box<str>, u32>,
    /// The next index to hand out.
    next_slot: u32,
    /// Profiles by token digest (current and in-grace tokens).
    by_token: ShardedMap<DigestKey, TokenEntry, BuildDigestHasher>,
    /// Profiles by id.
    profiles: ShardedMap<Box<str>, Arc<CompiledProfile>, RandomState>,
    /// Clients by the digest of their portal key, for the client portal.
    portals: ShardedMap<DigestKey, Arc<PortalClient>, BuildDigestHasher>,
    /// This snapshot's number, unique in the process (0 is the empty default snapshot): what
    /// the gate's memo of refusals is keyed by, so that no refusal outlives its snapshot.
    epoch: u64,
}

/// The epoch of the next snapshot [`Snapshot::apply`] makes.
static NEXT_EPOCH: AtomicU64 = AtomicU64::new(1);

/// A client as its portal page sees it: found by the SHA-256 digest of its portal key.
#[derive(Debug)]
pub struct PortalClient {
    /// Client id.
    pub id: Box<str>,
    /// Client name.
    pub name: Box<str>,
    /// Whether the client is active (a disabled client's portal answers 404).
    pub active: bool,
    /// Ids of the client's profiles (at most [`MAX_PROFILES_PER_CLIENT`]).
    pub profile_ids: Box<[Box<str>]>,
}

impl Snapshot {
    /// Compiles a whole state document (parsing every key once) after checking what a change
    /// through the admin API cannot break: every profile names an existing client, no client has
    /// more than [`MAX_PROFILES_PER_CLIENT`] profiles, no two profiles share a token.
    pub fn build(state: &State) -> Result<Snapshot, BuildError> {
        let catalog = Catalog::from_state(state);
        let mut per_client: HashMap<&str, usize> = HashMap::new();
        for profile in &state.profiles {
            let count = per_client.entry(profile.client_id.as_str()).or_default();
            *count += 1;
            if *count > MAX_PROFILES_PER_CLIENT {
                return Err(build_error(
                    "client_id",
                    format!("a client has at most {MAX_PROFILES_PER_CLIENT} profiles"),
                ));
            }
        }
        let (collections, clients, profiles) = catalog.counts();
        if (collections, clients, profiles)
            != (
                state.collections.len(),
                state.clients.len(),
                state.profiles.len(),
            )
        {
            return Err(build_error("id", "two objects of one kind share an id"));
        }
        let applied: Vec<Applied> = (catalog.collections().cloned().map(Row::Collection))
            .chain(catalog.clients().cloned().map(Row::Client))
            .chain(catalog.profiles().cloned().map(Row::Profile))
            .map(|row| Applied {
                kind: row.kind(),
                id: row.id().to_owned(),
                before: None,
                after: Some(row),
            })
            .collect();
        Snapshot::default().apply(&applied, &catalog)
    }

    /// The next snapshot: this one with the changes in `applied` (as [`Catalog::apply`] returned
    /// them), where `catalog` is the catalog after those changes. Only changed collections and
    /// the profiles that changed or whose client changed are compiled; a profile whose `auth` did
    /// not change keeps its parsed key, and every profile keeps its rate limiter.
    ///
    /// Errors name the offending field (an unparsable key, an unknown collection id, a collection
    /// path used twice, a profile without its client); `self` is unchanged.
    pub fn apply(&self, applied: &[Applied], catalog: &Catalog) -> Result<Snapshot, BuildError> {
        let mut next = self.clone();
        next.epoch = NEXT_EPOCH.fetch_add(1, Ordering::Relaxed);
        // Profile id → whether its compiled `auth` may be kept.
        let mut recompile: BTreeMap<&str, bool> = BTreeMap::new();
        // Clients whose portal entry must be rebuilt.
        let mut portals: BTreeMap<&str, ()> = BTreeMap::new();
        for change in applied {
            match change.kind {
                Kind::Collection => next.apply_collection(change)?,
                Kind::Client => {
                    if let Some(Row::Client(old)) = &change.before {
                        next.remove_portal(&old.id, &old.portal_key);
                    }
                    portals.insert(change.id.as_str(), ());
                    for profile in catalog.profiles_of_client(&change.id) {
                        recompile.entry(profile.id.as_str()).or_insert(true);
                    }
                }
                Kind::Profile => {
                    for row in [&change.before, &change.after].into_iter().flatten() {
                        if let Row::Profile(p) = row {
                            portals.insert(p.client_id.as_str(), ());
                        }
                    }
                    let same_auth = matches!(
                        (&change.before, &change.after),
                        (Some(Row::Profile(b)), Some(Row::Profile(a))) if b.auth == a.auth
                    );
                    let keep = recompile.entry(change.id.as_str()).or_insert(same_auth);
                    *keep &= same_auth;
                }
            }
        }
        for (id, keep_auth) in recompile {
            next.recompile_profile(id, keep_auth, catalog)?;
        }
        for client_id in portals.into_keys() {
            next.rebuild_portal(client_id, catalog);
        }
        Ok(next)
    }

    /// This snapshot's number: unique among the snapshots of this process (clones share it,
    /// as they hold the same objects), 0 for the empty default snapshot.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Drops the portal entry of `portal_key` if it still belongs to `client_id`.
    fn remove_portal(&mut self, client_id: &str, portal_key: &str) {
        let digest = DigestKey(token_digest(portal_key.as_bytes()));
        if self
            .portals
            .get(&digest)
            .is_some_and(|c| *c.id == *client_id)
        {
            self.portals.remove(&digest);
        }
    }

    /// Puts the catalog's current view of a client (name, activity, profile ids) under the
    /// digest of its portal key; a deleted client has none.
    fn rebuild_portal(&mut self, client_id: &str, catalog: &Catalog) {
        let Some(client) = catalog.client(client_id) else {
            return;
        };
        let entry = PortalClient {
            id: client.id.as_str().into(),
            name: client.name.as_str().into(),
            active: client.active,
            profile_ids: catalog
                .profiles_of_client(client_id)
                .map(|p| p.id.as_str().into())
                .collect(),
        };
        let digest = DigestKey(token_digest(client.portal_key.as_bytes()));
        self.portals.insert(digest, Arc::new(entry));
    }

    fn apply_collection(&mut self, change: &Applied) -> Result<(), BuildError> {
        if let Some(Row::Collection(old)) = &change.before {
            if self
                .collection_for_segment(&old.path)
                .is_some_and(|(_, c)| *c.id == *old.id)
            {
                self.remove_collection(&old.path);
            }
        }
        let Some(Row::Collection(collection)) = &change.after else {
            self.slots.remove(change.id.as_str());
            return Ok(());
        };
        validate_collection_path(&collection.path)?;
        let index = match self.slots.get(collection.id.as_str()) {
            Some(index) => *index,
            None => {
                let index = self.next_slot;
                self.next_slot = index
                    .checked_add(1)
                    .ok_or_else(|| build_error("collections", "too many collections"))?;
                self.slots.insert(collection.id.as_str().into(), index);
                index
            }
        };
        let compiled = CompiledCollection::build(index, &collection.id, &collection.endpoints)
            .map_err(|(i, e)| build_error(format!("endpoints[{i}].{}", e.field), e.message))?
            .named(&collection.name, &collection.path);
        match self.collection_for_segment(&collection.path) {
            Some((_, other)) if *other.id != *collection.id => {
                return Err(build_error(
                    "path",
                    format!("collection path {:?} is used twice", collection.path),
                ));
            }
            Some((position, _)) => self.listed[position as usize] = Arc::new(compiled),
            None => {
                let position = u32::try_from(self.listed.len())
                    .map_err(|_| build_error("collections", "too many collections"))?;
                self.listed.push(Arc::new(compiled));
                self.collections
                    .insert(collection.path.as_str().into(), position);
            }
        }
        Ok(())
    }

    /// The collection under URL segment `segment`, with its position in `listed`.
    fn collection_for_segment(&self, segment: &str) -> Option<(u32, &CompiledCollection)> {
        let position = *self.collections.get(segment)?;
        Some((position, self.listed.get(position as usize)?))
    }

    /// Drops the collection under `segment`; the last one listed takes its position.
    fn remove_collection(&mut self, segment: &str) {
        let Some(position) = self.collections.remove(segment) else {
            return;
        };
        let position = position as usize;
        if position < self.listed.len() {
            self.listed.swap_remove(position);
            if let Some(moved) = self.listed.get(position) {
                self.collections.insert(moved.path.clone(), position as u32);
            }
        }
    }

    fn recompile_profile(
        &mut self,
        id: &str,
        keep_auth: bool,
        catalog: &Catalog,
    ) -> Result<(), BuildError> {
        let key: Box<str> = id.into();
        let old = self.profiles.remove(&key);
        if let Some(old) = &old {
            for digest in old.token_digests.iter() {
                let digest = DigestKey(*digest);
                if self
                    .by_token
                    .get(&digest)
                    .is_some_and(|e| Arc::ptr_eq(&e.profile, old))
                {
                    self.by_token.remove(&digest);
                }
            }
        }
        let Some(profile) = catalog.profile(id) else {
            return Ok(());
        };
        let client = catalog.client(&profile.client_id).ok_or_else(|| {
            build_error(
                "client_id",
                format!("profile {} names no existing client", profile.id),
            )
        })?;
        let auth = match &old {
            Some(old) if keep_auth => old.auth.clone(),
            _ => Arc::new(compile_auth(&profile.auth)?),
        };
        let previous = old
            .as_ref()
            .map(|o| (o.rate_limiter.clone(), o.quota.clone()))
            .unwrap_or_default();
        let compiled = Arc::new(compile_profile(
            profile,
            client,
            &self.slots,
            auth,
            previous,
        )?);
        for (i, digest) in compiled.token_digests.iter().enumerate() {
            let entry = TokenEntry {
                profile: compiled.clone(),
                // The second digest is the previous token, live until its deadline.
                valid_until_ms: (i > 0)
                    .then(|| profile.previous_token.as_ref().map(|g| g.valid_until_ms))
                    .flatten(),
                callers: Arc::default(),
            };
            let digest = DigestKey(*digest);
            match self.by_token.get(&digest) {
                None => {
                    self.by_token.insert(digest, entry);
                }
                Some(_) if i > 0 => {}
                Some(_) => return Err(build_error("token", "two profiles share one auth token")),
            }
        }
        self.profiles.insert(key, compiled);
        Ok(())
    }

    /// The profile an auth token digest names.
    #[inline]
    pub fn profile_by_token(&self, digest: &TokenDigest) -> Option<&TokenEntry> {
        self.by_token.get(&DigestKey(*digest))
    }

    /// The client whose portal key has this SHA-256 digest (active or not).
    pub fn portal_client(&self, digest: &TokenDigest) -> Option<&PortalClient> {
        self.portals.get(&DigestKey(*digest)).map(|c| &**c)
    }

    /// A profile by id.
    pub fn profile(&self, id: &str) -> Option<&CompiledProfile> {
        self.profiles.get(&Box::<str>::from(id)).map(|p| &**p)
    }

    /// Every collection, in no particular order.
    pub fn collections(&self) -> impl Iterator<Item = &CompiledCollection> {
        self.listed.iter().map(|c| &**c)
    }

    /// Every profile with a quota, with its counter (for the quota sync).
    pub fn quotas(&self) -> impl Iterator<Item = (&CompiledProfile, &Arc<QuotaCounter>)> {
        self.profiles
            .values()
            .filter_map(|p| p.quota.as_ref().map(|q| (&**p, q)))
    }

    /// The collection a request path starts with, and the rest of the path.
    pub fn collection_for<'p>(&self, path: &'p str) -> Option<(&CompiledCollection, &'p str)> {
        let (segment, rest) = split_collection(path)?;
        self.collection_for_segment(segment).map(|(_, c)| (c, rest))
    }

    /// Finds the endpoint for a request: the collection, then the endpoint inside it.
    pub fn route<'p>(
        &self,
        method: &http::Method,
        path: &'p str,
    ) -> Option<(&CompiledCollection, Option<&CompiledEndpoint>, &'p str)> {
        let (collection, rest) = self.collection_for(path)?;
        Some((collection, collection.find(method, rest), rest))
    }

    /// [`Snapshot::route`] by position, for a memo of routes ([`crate::core::route_memo`]):
    /// the collection's position in this snapshot and the endpoint's index in the collection's
    /// `endpoints`.
    pub fn route_position(
        &self,
        method: &http::Method,
        path: &str,
    ) -> Option<(u32, Option<usize>)> {
        let (segment, rest) = split_collection(path)?;
        let (position, collection) = self.collection_for_segment(segment)?;
        Some((position, collection.find_index(method, rest)))
    }

    /// The collection at `position` ([`Snapshot::route_position`]); positions hold for one
    /// snapshot (one [`Snapshot::epoch`]) only.
    pub fn collection_at(&self, position: u32) -> Option<&CompiledCollection> {
        self.listed.get(position as usize).map(|c| &**c)
    }
}

/// The live registry: readers load the current snapshot without locking.
pub struct Registry {
    current: ArcSwap<Snapshot>,
}

impl Registry {
    /// A registry serving `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        Registry {
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    /// The current snapshot, kept alive for as long as the caller holds it.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// A cheap read guard of the current snapshot for one request.
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// Replaces the snapshot; requests that start afterwards see the new one.
    pub fn install(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }
}
