//! Runs the README's example (`examples/client.rs`) and checks what it
//! shows: five 503s, then a rejection that never reached the server.

#[path = "../examples/client.rs"]
#[allow(dead_code, unreachable_pub)]
mod client;

#[tokio::test]
async fn the_readme_example_trips_then_fails_fast() {
    let seen = client::run().await.expect("the example runs");
    assert_eq!(seen.len(), 6);
    for s in &seen[..5] {
        assert_eq!(s, "503 Service Unavailable");
    }
    assert!(
        seen[5].starts_with("circuit breaker rejected the call: open"),
        "{seen:?}"
    );
}
