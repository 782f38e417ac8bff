//! Waiting on state in tests without fixed sleeps: poll a check every 20 ms until it holds or a
//! bound passes (`testing` feature; the queue's and the API's tests use it).

use std::future::Future;
use std::time::Duration;

/// Poll `check` every 20 ms until it returns `Some`; panic with `what` after `limit`.
pub async fn poll_for<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {limit:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Poll `check` every 20 ms until it returns true; panic with `what` after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll_for(limit, what, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await
}
