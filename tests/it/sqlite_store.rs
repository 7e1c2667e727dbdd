//! The embedded SQLite store, the import of an earlier version's state.json, sealed HS256
//! secrets and the key files, on a real file system.

use std::fs;

use crate::support::fixtures::jwt_config;
use crate::support::{mode, open_store, store_bytes, TempDir};
use tokengate::core::catalog::{ChangeSet, Kind};
use tokengate::core::model::{
    AuthConfig, Client, Collection, Endpoint, FixedResponse, JwtAlg, JwtConfig, Profile, State,
    StoredToken,
};
use tokengate::store::{
    load_or_create_admin_key, load_or_create_secrets_key, AdminKeySource, OpenEvent, SecretsKey,
    SecretsKeySource, SqliteStore, Store, StoreErrorKind, DB_FILE,
};

fn sample_state() -> State {
    let token = tokengate::core::token::generate().unwrap();
    State {
        format: State::FORMAT,
        revision: 7,
        collections: vec![Collection {
            id: "c1".into(),
            name: "Orders".into(),
            path: "orders".into(),
            endpoints: vec![Endpoint {
                id: "e1".into(),
                name: "list".into(),
                method: "GET".into(),
                path: "/".into(),
                upstream: None,
                response: Some(FixedResponse {
                    status: 200,
                    headers: Default::default(),
                    body: serde_json::json!({"ok": true}),
                }),
                active: true,
            }],
        }],
        clients: vec![Client {
            id: "k1".into(),
            name: "Acme".into(),
            portal_key: "p".repeat(64),
            active: true,
        }],
        profiles: vec![Profile {
            id: "p1".into(),
            client_id: "k1".into(),
            name: "prod".into(),
            collections: vec!["c1".into()],
            auth: AuthConfig::Token,
            active: true,
            policy: None,
            ip_allow: vec!["10.0.0.0/8".into()],
            token: StoredToken {
                sha256: token.stored.sha256,
                last4: token.stored.last4,
            },
            previous_token: None,
            generation: 3,
        }],
    }
}

/// The same state as the store reads it back: rows in id order, at `revision`.
fn as_loaded(state: &State, revision: u64) -> State {
    let mut state = state.clone();
    state.revision = revision;
    state.collections.sort_by(|a, b| a.id.cmp(&b.id));
    state.clients.sort_by(|a, b| a.id.cmp(&b.id));
    state.profiles.sort_by(|a, b| a.id.cmp(&b.id));
    state
}

fn hs256_profile(id: &str, secret: &str) -> Profile {
    let mut profile = sample_state().profiles.remove(0);
    profile.id = id.into();
    profile.auth = AuthConfig::Jwt(JwtConfig {
        secret: Some(secret.into()),
        ..jwt_config(JwtAlg::HS256)
    });
    profile
}

#[test]
fn an_empty_store_loads_empty_and_the_data_dir_and_database_are_private() {
    let tmp = TempDir::new();
    let dir = tmp.path().join("nested").join("data");
    let store = open_store(&dir);
    let state = store.load().unwrap();
    assert_eq!(state, State::default());
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(DB_FILE)), 0o600);
    assert_eq!(mode(&dir.join("secrets.key")), 0o600);
}

#[test]
fn committed_rows_load_back_equal_after_a_restart_and_deletes_stick() {
    let tmp = TempDir::new();
    let store = open_store(tmp.path());
    let state = sample_state();
    assert_eq!(store.commit(&ChangeSet::from_state(&state)).unwrap(), 1);
    assert_eq!(store.load().unwrap(), as_loaded(&state, 1));
    drop(store);
    // A second store over the same directory (a restart) reads the same rows.
    let again = open_store(tmp.path());
    assert_eq!(again.load().unwrap(), as_loaded(&state, 1));
    let mut change = ChangeSet::default();
    change.delete(Kind::Profile, "p1");
    assert_eq!(again.commit(&change).unwrap(), 2);
    drop(again);
    let loaded = open_store(tmp.path()).load().unwrap();
    assert!(loaded.profiles.is_empty());
    assert_eq!(loaded.revision, 2);
    assert_eq!(loaded.clients, state.clients);
}

#[test]
fn hs256_secrets_are_sealed_at_rest_and_need_their_key() {
    let tmp = TempDir::new();
    let secret = "an HS256 secret of at least thirty-two bytes";
    let store = open_store(tmp.path());
    let mut state = sample_state();
    state.profiles = vec![hs256_profile("p1", secret)];
    store.commit(&ChangeSet::from_state(&state)).unwrap();
    assert_eq!(store.load().unwrap().profiles, state.profiles);
    drop(store);

    // Straight from the database, as a thief would read it: no secret in any column or byte.
    let conn = rusqlite::Connection::open(tmp.path().join(DB_FILE)).unwrap();
    let (body, sealed): (String, Vec<u8>) = conn
        .query_row(
            "SELECT body, secret_sealed FROM profiles WHERE id = 'p1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    drop(conn);
    assert!(!body.contains(secret), "{body}");
    assert!(!body.contains("\"secret\""), "{body}");
    assert!(sealed.len() > secret.len());
    assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));
    let bytes = store_bytes(tmp.path());
    assert!(!bytes.is_empty());
    assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));

    // Another key cannot open them: the store refuses to load, naming the profile, not the key.
    let other = SecretsKey::from_base64(&"A".repeat(43)).unwrap();
    let (store, _) = SqliteStore::open(tmp.path(), other).unwrap();
    let err = store.load().unwrap_err().to_string();
    assert!(
        err.contains("cannot decrypt") && err.contains("p1"),
        "{err}"
    );
    assert!(!err.contains(secret));
}

#[test]
fn a_state_file_is_imported_once_then_renamed_never_deleted() {
    let tmp = TempDir::new();
    let state = sample_state();
    let text = serde_json::to_string_pretty(&state).unwrap();
    fs::write(tmp.path().join("state.json"), &text).unwrap();
    let (secrets, _) = load_or_create_secrets_key(tmp.path(), None, true).unwrap();
    let (store, event) = SqliteStore::open(tmp.path(), secrets).unwrap();
    let Some(OpenEvent::Imported { renamed_to, counts }) = event else {
        panic!("no import: {event:?}")
    };
    assert_eq!(counts, (1, 1, 1));
    assert!(!tmp.path().join("state.json").exists());
    let name = renamed_to
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with("state.json.imported-"), "{name}");
    assert_eq!(fs::read_to_string(&renamed_to).unwrap(), text);
    // The revision carries over, so nodes and tests see the history continue.
    assert_eq!(store.load().unwrap(), as_loaded(&state, 7));
    let mut change = ChangeSet::default();
    change.delete(Kind::Profile, "p1");
    store.commit(&change).unwrap();
    drop(store);
    // A restart imports nothing again.
    let (secrets, _) = load_or_create_secrets_key(tmp.path(), None, true).unwrap();
    let (store, event) = SqliteStore::open(tmp.path(), secrets).unwrap();
    assert_eq!(event, None);
    assert!(store.load().unwrap().profiles.is_empty());
    drop(store);
    // A state.json put back is refused, and the kept copy is not overwritten.
    fs::write(tmp.path().join("state.json"), "{}").unwrap();
    let (secrets, _) = load_or_create_secrets_key(tmp.path(), None, true).unwrap();
    let err = SqliteStore::open(tmp.path(), secrets)
        .unwrap_err()
        .to_string();
    assert!(err.contains("already imported"), "{err}");
    assert_eq!(fs::read_to_string(&renamed_to).unwrap(), text);
}

#[test]
fn leftover_temp_files_from_a_crash_are_removed_on_open() {
    let tmp = TempDir::new();
    let leftover = tmp.path().join(".tmp-admin.key-deadbeef");
    fs::write(&leftover, b"torn").unwrap();
    let store = open_store(tmp.path());
    assert!(!leftover.exists());
    assert_eq!(store.load().unwrap(), State::default());
}

#[test]
fn a_corrupt_state_file_is_an_error_naming_it_never_an_empty_start() {
    for (content, kind) in [
        (
            &b"{\"format\":1,\"collections\":[{\"id\""[..],
            StoreErrorKind::Corrupt,
        ),
        (b"", StoreErrorKind::Corrupt),
        (b"not json", StoreErrorKind::Corrupt),
        (b"[1,2]", StoreErrorKind::Corrupt),
        (b"{\"format\":1,\"surprise\":1}", StoreErrorKind::Corrupt),
        (b"{\"format\":99}", StoreErrorKind::UnsupportedFormat),
    ] {
        let tmp = TempDir::new();
        fs::write(tmp.path().join("state.json"), content).unwrap();
        let (secrets, _) = load_or_create_secrets_key(tmp.path(), None, true).unwrap();
        let err = SqliteStore::open(tmp.path(), secrets).unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        assert!(err.is_unreadable_document());
        let text = err.to_string();
        assert!(text.contains("state.json"), "{text}");
        assert!(text.contains("refuses to start"), "{text}");
        // Left as it was, for the operator to inspect.
        assert_eq!(fs::read(tmp.path().join("state.json")).unwrap(), content);
    }
}

#[test]
fn a_database_from_a_newer_build_is_refused() {
    let tmp = TempDir::new();
    drop(open_store(tmp.path()));
    let conn = rusqlite::Connection::open(tmp.path().join(DB_FILE)).unwrap();
    conn.execute(
        "UPDATE meta SET value = 99 WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(conn);
    let (secrets, _) = load_or_create_secrets_key(tmp.path(), None, true).unwrap();
    let err = SqliteStore::open(tmp.path(), secrets).unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::UnsupportedFormat, "{err}");
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[test]
fn secrets_keys_come_from_the_environment_or_a_private_file() {
    let tmp = TempDir::new();
    let (_, source) = load_or_create_secrets_key(tmp.path(), None, true).unwrap();
    let path = tmp.path().join("secrets.key");
    assert_eq!(source, SecretsKeySource::Created(path.clone()));
    assert_eq!(mode(&path), 0o600);
    let (_, source) = load_or_create_secrets_key(tmp.path(), None, true).unwrap();
    assert_eq!(source, SecretsKeySource::File(path.clone()));
    let env = "q1XbgTQqV3GS6OnRzbrUvH2e9LxEHg6G5iRH1YdKW8I=".to_owned();
    let (_, source) = load_or_create_secrets_key(tmp.path(), Some(env), true).unwrap();
    assert_eq!(source, SecretsKeySource::Environment);
    let err = load_or_create_secrets_key(tmp.path(), Some("c2hvcnQ=".into()), true).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("TOKENGATE_SECRETS_KEY") && text.contains("32"),
        "{text}"
    );
    assert!(!text.contains("c2hvcnQ="), "{text}");
    // Where none may be created (a shared database), a missing key is an error.
    let empty = TempDir::new();
    let err = load_or_create_secrets_key(empty.path(), None, false).unwrap_err();
    assert!(err.to_string().contains("TOKENGATE_SECRETS_KEY"), "{err}");
}

#[test]
fn admin_key_is_created_0600_on_first_start_and_reused_after() {
    let tmp = TempDir::new();
    let (key, source) = load_or_create_admin_key(tmp.path(), None).unwrap();
    let path = tmp.path().join("admin.key");
    assert_eq!(source, AdminKeySource::Created(path.clone()));
    assert_eq!(mode(&path), 0o600);
    let text = fs::read_to_string(&path).unwrap();
    let written = text.trim();
    assert_eq!(written.len(), 64);
    assert!(written.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(key.matches(written.as_bytes()));
    assert!(!key.matches(b"something else"));
    // Its Debug form does not show it.
    assert!(!format!("{key:?}").contains(written));

    let (again, source) = load_or_create_admin_key(tmp.path(), None).unwrap();
    assert_eq!(source, AdminKeySource::File(path.clone()));
    assert!(again.matches(written.as_bytes()));
    assert_eq!(fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn environment_admin_key_wins_and_writes_nothing() {
    let tmp = TempDir::new();
    let (key, source) =
        load_or_create_admin_key(tmp.path(), Some("from-the-environment".into())).unwrap();
    assert_eq!(source, AdminKeySource::Environment);
    assert!(key.matches(b"from-the-environment"));
    assert!(!tmp.path().join("admin.key").exists());
    // Blank means unset.
    let (_, source) = load_or_create_admin_key(tmp.path(), Some("  ".into())).unwrap();
    assert!(matches!(source, AdminKeySource::Created(_)));
}

#[test]
fn empty_admin_key_file_is_refused() {
    let tmp = TempDir::new();
    fs::write(tmp.path().join("admin.key"), "\n").unwrap();
    let err = load_or_create_admin_key(tmp.path(), None).unwrap_err();
    assert!(err.to_string().contains("admin.key"), "{err}");
}

#[test]
fn numbers_in_fixed_bodies_read_back_exactly() {
    // Found by fuzz/admin_input: a number beyond f64 precision in a fixed-response body came
    // back from the store one ulp off (serde_json's default float parser is not exact).
    let tmp = TempDir::new();
    let store = open_store(tmp.path());
    let mut state = sample_state();
    state.collections[0].endpoints[0].response = Some(FixedResponse {
        status: 200,
        headers: Default::default(),
        body: serde_json::from_str(
            r#"{"n":[1,55555555555555500000000000000000000000000000000000000000000000000000002049638230412172226,-3,0.1,1e308,2.2250738585072014e-308]}"#,
        )
        .unwrap(),
    });
    store.commit(&ChangeSet::from_state(&state)).unwrap();
    assert_eq!(store.load().unwrap().collections, state.collections);
}
