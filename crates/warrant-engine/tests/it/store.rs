//! The audit chain in the store: every change audited, tampering found.

use sqlx::AnyPool;
use warrant_audit::Event;
use warrant_core::Timestamp;

use crate::conformance;
use crate::harness::Env;

conformance!(writes_without_an_audit_event_are_refused, |env| {
    let mut tx = env.engine.store().begin().await.unwrap();
    tx.w()
        .await
        .unwrap()
        .revoke_tokens_of("alice", Timestamp::from_millis(0))
        .await
        .unwrap();
    let e = tx.commit().await.unwrap_err();
    assert!(matches!(e, warrant_store::StoreError::Unaudited));
    let mut tx = env.engine.store().begin().await.unwrap();
    tx.audit(
        env.engine.now(),
        None,
        &Event::Signout {
            identity: "alice".into(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(env.engine.audit_verify().await.unwrap().intact);
});

async fn raw(env: &Env) -> AnyPool {
    sqlx::any::install_default_drivers();
    AnyPool::connect(&env.url).await.unwrap()
}

conformance!(tampering_is_found_at_its_position, |env| {
    let rep = env.engine.audit_verify().await.unwrap();
    assert!(rep.intact, "{rep:?}");
    assert!(rep.records > 20);
    let pool = raw(&env).await;

    // Modify one record.
    sqlx::query("UPDATE audit SET data = replace(data, 'alice', 'mallory') WHERE seq = 10")
        .execute(&pool)
        .await
        .unwrap();
    let rep = env.engine.audit_verify().await.unwrap();
    assert_eq!(rep.first_broken, Some(10), "{rep:?}");
    assert!(rep.problem.unwrap().contains("modified"));
});

conformance!(deletion_reordering_and_truncation_are_found, |env| {
    let pool = raw(&env).await;
    sqlx::query("DELETE FROM audit WHERE seq = 7")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        env.engine.audit_verify().await.unwrap().first_broken,
        Some(7)
    );

    // Reorder: swap the contents of two records (by renumbering).
    sqlx::query("UPDATE audit SET seq = 7 WHERE seq = 8")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit SET seq = 8 WHERE seq = 9")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        env.engine.audit_verify().await.unwrap().first_broken,
        Some(7)
    );

    // Truncating the tail is found against the recorded head.
    let head: i64 = sqlx::query_scalar("SELECT MAX(seq) FROM audit")
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit WHERE seq >= 7")
        .execute(&pool)
        .await
        .unwrap();
    let rep = env.engine.audit_verify().await.unwrap();
    assert_eq!(rep.first_broken, Some(7), "{rep:?} (head was {head})");
});

conformance!(
    pruning_a_piece_that_does_not_verify_changes_nothing,
    |env| {
        // The audit key exists first (making it is an event of its own).
        env.engine.audit_key().await.unwrap();
        let before = env.engine.audit_verify().await.unwrap().records;
        let pool = raw(&env).await;
        sqlx::query("UPDATE audit SET data = replace(data, 'alice', 'mallory') WHERE seq = 10")
            .execute(&pool)
            .await
            .unwrap();
        let archive = tempfile::tempdir().unwrap();
        let err = env
            .engine
            .audit_prune(None, i64::MAX, archive.path())
            .await
            .unwrap_err();
        assert_eq!(err.code, "audit_chain_broken", "{err}");
        assert!(err.to_string().contains("nothing was pruned"), "{err}");
        // No archive, not even a part of one, and every record still there.
        let left: Vec<_> = std::fs::read_dir(archive.path())
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
        let records: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(records as u64, before);
    }
);
