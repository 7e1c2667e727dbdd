//! An answer is written into its request's own header map (emptied first: `door::respond`), so
//! on one keep-alive connection no request field, credential included, may ever come back in an
//! answer, whatever the request before it sent; and a request with many fields leaves no large
//! map behind.

use std::collections::BTreeSet;

use crate::support::gateway::{ping, Gateway};
use crate::support::wire::{connect_and_write, read_response, RawResponse};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The header names of a raw response, lower-cased.
fn names(response: &RawResponse) -> BTreeSet<String> {
    response
        .head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, _)| name.trim().to_ascii_lowercase())
        .collect()
}

async fn exchange(stream: &mut TcpStream, fields: &[String]) -> RawResponse {
    let mut request = String::from("GET /api/ping HTTP/1.1\r\nhost: test\r\n");
    for field in fields {
        request.push_str(field);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    read_response(stream).await
}

#[tokio::test]
async fn answers_carry_only_their_own_fields_on_a_keep_alive_connection() {
    let gw = Gateway::start().await;
    let api = gw.admin.collection("api", json!([ping("/ping")])).await;
    let access = gw
        .admin
        .access(
            "Keep-alive client",
            json!({"collections": [api], "auth": {"type": "token"}}),
        )
        .await;
    let token = format!("api-token: {}", access.token);
    let ok: BTreeSet<String> = ["content-type", "content-length", "date"]
        .map(String::from)
        .into();
    let refused: BTreeSet<String> = ["content-type", "www-authenticate", "content-length", "date"]
        .map(String::from)
        .into();
    let mut stream = connect_and_write(gw.data, b"").await;

    // Admitted, with a field of its own.
    let first = exchange(&mut stream, &[token.clone(), "x-probe: one".into()]).await;
    assert_eq!(first.status, 200, "{}", first.head);
    assert_eq!(names(&first), ok, "{}", first.head);
    assert_eq!(first.json(), json!({"pong": true}));

    // Admitted, with 40 more fields: its map is larger than an answer takes over.
    let mut many = vec![token.clone()];
    many.extend((0..40).map(|i| format!("x-filler-{i:02}: filler")));
    let second = exchange(&mut stream, &many).await;
    assert_eq!(second.status, 200, "{}", second.head);
    assert_eq!(names(&second), ok, "{}", second.head);

    // Refused: the 401's own fields, none of the request's.
    let third = exchange(
        &mut stream,
        &[
            "authorization: Bearer not.a.jwt".into(),
            "x-probe: two".into(),
        ],
    )
    .await;
    assert_eq!(third.status, 401, "{}", third.head);
    assert_eq!(names(&third), refused, "{}", third.head);
    assert_eq!(third.json()["error"], "invalid_token");

    // Admitted again after the refusal: the 401's fields are gone too.
    let fourth = exchange(&mut stream, std::slice::from_ref(&token)).await;
    assert_eq!(fourth.status, 200, "{}", fourth.head);
    assert_eq!(names(&fourth), ok, "{}", fourth.head);
    for response in [&first, &second, &third, &fourth] {
        assert!(!response.head.contains(&access.token), "{}", response.head);
    }
}
