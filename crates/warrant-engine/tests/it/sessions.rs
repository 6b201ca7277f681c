//! Session timeouts: idle (since last use, recorded at most once a minute) and absolute (since
//! sign-in), on the manual clock; a new token at every sign-in.

use warrant_core::Secret;

use crate::conformance;
use crate::harness::Env;

async fn sign_in(env: &Env, name: &str) -> String {
    env.engine
        .sign_in(
            name,
            Secret::new(format!("{name}-demo-password")),
            None,
            "test",
        )
        .await
        .unwrap()
        .token
        .expose()
        .clone()
}

conformance!(sessions_end_when_idle_and_at_their_absolute_limit, |env| {
    let first = sign_in(&env, "alice").await;
    let second = sign_in(&env, "alice").await;
    assert_ne!(first, second, "a new token at every sign-in");

    // Used every 50 minutes, a session lives on past the 1 h idle limit...
    for _ in 0..5 {
        env.clock.advance_secs(50 * 60);
        env.engine.authenticate(&first).await.unwrap();
    }
    // ...while the one left alone has ended.
    let e = env.engine.authenticate(&second).await.unwrap_err();
    assert_eq!(e.code, "invalid_token");

    // The absolute limit (12 h) ends even a busy session.
    let busy = sign_in(&env, "bob").await;
    let mut used = 0;
    for _ in 0..16 {
        env.clock.advance_secs(50 * 60);
        if env.engine.authenticate(&busy).await.is_err() {
            break;
        }
        used += 1;
    }
    assert_eq!(used, 14, "usable up to 12 h (14 × 50 min), not after");
    assert_eq!(
        env.engine.authenticate(&busy).await.unwrap_err().code,
        "invalid_token"
    );

    // API tokens have no idle limit.
    let admin = env.admin.clone();
    let api = env
        .engine
        .create_api_token(&admin, "ci", None, warrant_engine::Scope::Full)
        .await
        .unwrap();
    env.clock.advance_secs(30 * 24 * 3600);
    env.engine.authenticate(api.token.expose()).await.unwrap();
});
