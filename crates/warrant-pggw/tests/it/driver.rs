//! tokio-postgres through the gateway: the extended protocol (prepared statements executed many
//! times, binary parameters), transactions, COPY in and out, errors that leave the connection
//! usable, and cancel requests mapped to the target's own key.

use std::pin::pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use warrant_pggw::EndReason;

use super::{Gw, active_queries, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_transactions_and_copy_work() {
    let gw = Gw::start().await;
    let (mut client, connection) = gw.connect().await;
    let me: String = client
        .query_one("SELECT current_user", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(me, gw.account());

    client
        .batch_execute("CREATE TABLE kv (k int PRIMARY KEY, v text, b bytea)")
        .await
        .unwrap();
    // Prepared once, executed many times, with binary parameters (a NULL among them).
    let insert = client
        .prepare("INSERT INTO kv (k, v, b) VALUES ($1, $2, $3)")
        .await
        .unwrap();
    for k in 0..20_i32 {
        let v = format!("value {k} é");
        let b: Option<Vec<u8>> = (k % 2 == 0).then(|| vec![0, 0xff, u8::try_from(k).unwrap()]);
        assert_eq!(client.execute(&insert, &[&k, &v, &b]).await.unwrap(), 1);
    }
    let select = client
        .prepare("SELECT v, b FROM kv WHERE k = $1")
        .await
        .unwrap();
    for k in [0_i32, 7, 19] {
        let row = client.query_one(&select, &[&k]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), format!("value {k} é"));
        let b: Option<Vec<u8>> = row.get(1);
        assert_eq!(
            b,
            (k % 2 == 0).then(|| vec![0, 0xff, u8::try_from(k).unwrap()])
        );
    }

    // A transaction rolled back leaves nothing; one committed, its rows.
    let tx = client.transaction().await.unwrap();
    tx.execute("DELETE FROM kv", &[]).await.unwrap();
    tx.rollback().await.unwrap();
    let n: i64 = client
        .query_one("SELECT count(*) FROM kv", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 20);
    let tx = client.transaction().await.unwrap();
    tx.execute("DELETE FROM kv WHERE k >= 10", &[])
        .await
        .unwrap();
    tx.execute(&insert, &[&100_i32, &"in a transaction", &None::<Vec<u8>>])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let n: i64 = client
        .query_one("SELECT count(*) FROM kv", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 11);

    // COPY FROM STDIN: more than a 64 KiB read, in many chunks.
    let mut rows = String::new();
    for k in 1000..4000 {
        rows.push_str(&format!("{k}\tcopied row {k}, ünïcödé\t\\\\x0102\n"));
    }
    assert!(rows.len() > 100 * 1024);
    let mut sink = pin!(
        client
            .copy_in::<_, Bytes>("COPY kv (k, v, b) FROM STDIN")
            .await
            .unwrap()
    );
    for chunk in rows.as_bytes().chunks(7000) {
        sink.send(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    assert_eq!(sink.as_mut().finish().await.unwrap(), 3000);

    // COPY TO STDOUT: the same rows back, byte for byte.
    let mut stream = pin!(
        client
            .copy_out("COPY (SELECT k, v, b FROM kv WHERE k >= 1000 ORDER BY k) TO STDOUT")
            .await
            .unwrap()
    );
    let mut back = Vec::new();
    while let Some(chunk) = stream.next().await {
        back.extend_from_slice(&chunk.unwrap());
    }
    assert!(back == rows.as_bytes(), "the copied rows came back changed");

    drop(client);
    tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let (info, reason, _) = gw.authority.ended(1).await;
    assert_eq!(reason, EndReason::Closed);
    assert!(
        info.bytes_up > rows.len() as u64 && info.bytes_down > rows.len() as u64,
        "{info:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_leaves_the_connection_usable() {
    let gw = Gw::start().await;
    let (client, _connection) = gw.connect().await;
    // The extended protocol, then the simple one.
    let e = client.query_one("SELECT 1 / 0", &[]).await.unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::DIVISION_BY_ZERO), "{e:?}");
    let e = client.batch_execute("SELECT 1 / 0").await.unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::DIVISION_BY_ZERO), "{e:?}");
    let e = client
        .query_one("SELECT $1::int / $2::int", &[&1_i32, &0_i32])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::DIVISION_BY_ZERO), "{e:?}");
    let row = client.query_one("SELECT 6 * 7", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);

    // An error inside a transaction aborts it; a rollback makes the connection usable again.
    client.batch_execute("BEGIN").await.unwrap();
    let e = client.batch_execute("SELECT 1 / 0").await.unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::DIVISION_BY_ZERO));
    let e = client.batch_execute("SELECT 1").await.unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    client.batch_execute("ROLLBACK").await.unwrap();
    let row = client.query_one("SELECT 'still here'", &[]).await.unwrap();
    assert_eq!(row.get::<_, &str>(0), "still here");
    assert_eq!(gw.handle.sessions().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_cancels_the_running_statement() {
    let gw = Gw::start().await;
    let admin = gw.admin().await;
    let (client, _connection) = gw.connect().await;
    let token = client.cancel_token();
    let sleeper = tokio::spawn(async move {
        let result = client.query("SELECT pg_sleep(30)", &[]).await;
        (client, result)
    });
    wait_until("pg_sleep running on the target", async || {
        active_queries(&admin, gw.account(), "pg_sleep(30)").await == 1
    })
    .await;
    let started = Instant::now();
    token.cancel_query(NoTls).await.unwrap();
    let (client, result) = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("the statement was cancelled")
        .unwrap();
    let e = result.unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::QUERY_CANCELED), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The session goes on.
    let row = client.query_one("SELECT 'after'", &[]).await.unwrap();
    assert_eq!(row.get::<_, &str>(0), "after");
    assert_eq!(gw.handle.sessions().len(), 1);
}
