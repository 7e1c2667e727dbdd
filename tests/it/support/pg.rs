//! PostgreSQL for tests: a fresh database per test on the server `DATABASE_URL` names, so tests
//! run in parallel. Without `DATABASE_URL` a test says it skips — except in CI (`CI=true`),
//! where a missing database is a failure.

use tokio_postgres::NoTls;

/// The URL of a new, empty database, or `None` (with a line on stderr) when there is no
/// PostgreSQL to use outside CI. Panics in CI when `DATABASE_URL` is unset or unreachable.
pub async fn fresh_database(test: &str) -> Option<String> {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Ok(base) = std::env::var("DATABASE_URL") else {
        assert!(
            !in_ci,
            "{test}: DATABASE_URL is not set; CI must provide PostgreSQL"
        );
        eprintln!("SKIPPED {test}: set DATABASE_URL (postgres://user@host/db) to run it");
        return None;
    };
    let (client, connection) = match tokio_postgres::connect(&base, NoTls).await {
        Ok(pair) => pair,
        Err(e) => {
            assert!(
                !in_ci,
                "{test}: cannot reach PostgreSQL at DATABASE_URL: {e}"
            );
            eprintln!("SKIPPED {test}: cannot reach PostgreSQL at DATABASE_URL: {e}");
            return None;
        }
    };
    tokio::spawn(connection);
    let name = format!("tg_{}", tokengate::core::token::random_id().unwrap());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (prefix, _) = base
        .rsplit_once('/')
        .expect("DATABASE_URL ends with /<database>");
    Some(format!("{prefix}/{name}"))
}

/// Runs one query on `url` and returns the first column of each row as text.
pub async fn query_text(url: &str, sql: &str) -> Vec<String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .simple_query(sql)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .collect()
}
