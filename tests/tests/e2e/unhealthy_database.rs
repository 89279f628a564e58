//! The database goes away while the server runs: requests that need it are
//! answered `503 database_unavailable` with `Retry-After` (never a 500, never
//! a hang), health stays up, readiness says not ready, and when the database
//! returns the server recovers on its own, without a restart.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use sea_orm::EntityTrait;
use seedling_tests::chaos::ChaosProxy;
use seedling_tests::{Backend, Device, Fixture, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_gives_503_and_the_server_recovers_alone() {
    let target = "127.0.0.1:5432".parse().unwrap();
    let proxy = ChaosProxy::start(target).await;
    let proxied = proxy.addr.to_string();
    let app = TestApp::with_config(Backend::Postgres, |config| {
        config.database_url = config.database_url.replace("127.0.0.1:5432", &proxied);
        config.db_max_connections = Some(4);
    })
    .await;
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    admin.create_child(&app, fixture.village_a1, "孙小禾").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    phone.pull_all(&app).await;

    proxy.break_connections();
    for _ in 0..3 {
        let response = app.http.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key("retry-after"));

        let (status, body) = phone.pull_page(&app, 50).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "database_unavailable");

        let (status, body) = app
            .login("director-a2", seedling_tests::fixture::PASSWORD)
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }
    let (status, _) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "the process itself is alive");

    proxy.restore();
    // The pool reconnects by itself; give it a bounded number of tries.
    let mut ready = false;
    for _ in 0..100 {
        let (status, _) = app.call(Method::GET, "/readyz", None, None).await;
        if status == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ready,
        "the server did not recover after the database returned"
    );
    phone.pull_all(&app).await;
    let (status, body) = app
        .login("director-a2", seedling_tests::fixture::PASSWORD)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// PostgreSQL ends the server's connections while a push waits inside its
/// transaction (as it does when it shuts down, crashes or is demoted by a
/// failover: SQLSTATE 57P01): the push is answered `503
/// database_unavailable` with `Retry-After`, never a 500; the outage is
/// logged once and ends when the database answers; the phone's resend of the
/// same mutation is applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_ending_connections_mid_push_gives_503_and_the_resend_applies_once() {
    use sea_orm::{ConnectionTrait, Database, TransactionTrait};
    use seedling_server::entity::visit;
    use sync_core::protocol::MutationResult;

    let app = TestApp::new(Backend::Postgres).await;
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "孙小禾").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    phone.pull_all(&app).await;
    let day = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive();
    let (visit_id, builder) =
        phone.new_visit(child, fixture.village_a1, &format!("{day}T10:00:00+08:00"));
    let mutation = builder.build();

    // Another session holds the change log's writer lock, so the push waits
    // inside its transaction, on its connection, until that is ended.
    let url = &app.state.config.database_url;
    let holder_db = Database::connect(url).await.expect("connect");
    let holder = holder_db.begin().await.expect("a transaction");
    holder
        .execute_unprepared("UPDATE sync_locks SET taken = taken + 1 WHERE name = 'change_log'")
        .await
        .expect("take the writer lock");
    let holder_pid: i32 = holder
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_backend_pid() AS pid",
        ))
        .await
        .expect("the holder's pid")
        .expect("a row")
        .try_get("", "pid")
        .expect("pid");
    let observer = Database::connect(url).await.expect("connect");

    let in_flight = phone.push_in_background(&app, std::slice::from_ref(&mutation));
    seedling_tests::wait_until("the push waits on the writer lock", || async {
        observer
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT COUNT(*) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            ))
            .await
            .expect("pg_stat_activity")
            .and_then(|row| row.try_get::<i64>("", "n").ok())
            .is_some_and(|n| n > 0)
    })
    .await;
    observer
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> {holder_pid}"
        ))
        .await
        .expect("end the server's connections");

    let (status, retry_after, body) = in_flight.await.expect("the push task");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
    assert!(retry_after.is_some(), "a 503 says when to retry");
    assert!(app.state.outage.in_progress(), "the outage is noted");
    holder.rollback().await.expect("release the lock");

    // The outage ends by itself once the database answers the probe.
    seedling_tests::wait_until("the outage ends", || async {
        !app.state.outage.in_progress()
    })
    .await;
    // The phone sends the same push again: applied once; a third copy finds
    // the stored outcome.
    for _ in 0..2 {
        let answer = phone.push(&app, std::slice::from_ref(&mutation)).await;
        assert!(
            matches!(
                answer.results[0],
                MutationResult::Applied { version: 1, .. }
            ),
            "{:?}",
            answer.results
        );
    }
    let stored = visit::Entity::find_by_id(visit_id)
        .one(app.db())
        .await
        .expect("read the visit");
    assert!(stored.is_some(), "the resent visit is stored");
    let _ = observer.close().await;
    let _ = holder_db.close().await;
}

/// The PostgreSQL driver sets `TCP_NODELAY` on its connections: without it
/// every small request waits on Nagle's algorithm and a push took five times
/// as long (docs/BENCHMARKS.md). Checked on the server's own sockets: this
/// test process holds them, as the server runs in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_postgres_connection_sets_tcp_nodelay() {
    let app = TestApp::new(Backend::Postgres).await;
    let _fixture = Fixture::load(&app).await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    phone.pull_all(&app).await;

    let port = postgres_port(&app.state.config.database_url);
    let sockets = seedling_tests::sockets::connected_to_port(port);
    assert!(
        !sockets.is_empty(),
        "the server holds connections to port {port}"
    );
    for (fd, nodelay) in &sockets {
        assert!(
            nodelay,
            "the connection on fd {fd} to port {port} has no TCP_NODELAY"
        );
    }
}

fn postgres_port(url: &str) -> u16 {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    host.rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(5432)
}
