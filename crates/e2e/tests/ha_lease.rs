//! Exactly one replica stores a session's output at a time (issue 18): the stream's lease and its
//! fencing number in PostgreSQL, driven through HQ's own lease and output writer against a real
//! PostgreSQL, as two replicas would after a partition.

use std::sync::Arc;

use agentrelay_e2e::deps::TestDatabase;
use agentrelay_hq::cluster::pg::Pg;
use agentrelay_hq::cluster::stored::{AppendError, StoredRead, Writer, read, take_lease};
use agentrelay_hq::store::postgres::PgStore;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One replica's side: its own connections and its own output writer.
struct Replica {
    name: &'static str,
    pg: Arc<Pg>,
    writer: Writer,
    stop: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

impl Replica {
    fn new(name: &'static str, url: &str) -> Self {
        let pg = Arc::new(Pg::new(url).unwrap());
        let stop = CancellationToken::new();
        let (writer, done) = Writer::start(pg.clone(), stop.clone());
        Self { name, pg, writer, stop, done }
    }

    async fn take(&self, session: Uuid) -> (i64, u64) {
        take_lease(&self.pg, session, self.name).await.unwrap()
    }

    async fn append(
        &self,
        session: Uuid,
        fence: i64,
        start: u64,
        data: &'static [u8],
    ) -> Result<(), AppendError> {
        self.writer.append(session, fence, start, Bytes::from_static(data), None).await
    }

    async fn stop(self) {
        self.stop.cancel();
        self.done.await.unwrap();
    }
}

/// A database with HQ's schema.
async fn database() -> TestDatabase {
    let database = TestDatabase::create();
    let url = database.url.clone();
    // The store's client is blocking and runs a runtime of its own: on a thread of its own.
    std::thread::spawn(move || PgStore::open(&url).map(drop)).join().unwrap().unwrap();
    database
}

async fn stored(pg: &Pg, session: Uuid) -> Vec<u8> {
    match read(pg, session, 0, 1 << 20).await.unwrap() {
        StoredRead::Data(bytes) => bytes.to_vec(),
        other => panic!("expected stored output, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_lease_was_taken_stores_nothing_more() {
    let database = database().await;
    let (a, b) = (Replica::new("a", &database.url), Replica::new("b", &database.url));
    let session = Uuid::now_v7();
    let (fence_a, end) = a.take(session).await;
    assert_eq!(end, 0);
    a.append(session, fence_a, 0, b"0123456789").await.unwrap();

    // The runner reaches B (A is cut off from it, not from PostgreSQL): B takes the lease and
    // resumes where A's stored output ends.
    let (fence_b, end) = b.take(session).await;
    assert!(fence_b > fence_a, "a takeover gets a newer fencing number");
    assert_eq!(end, 10);
    // A still holds output it received before the partition: refused, where B goes on and
    // after it alike.
    let stale = a.append(session, fence_a, 10, b"abcdefghij").await;
    assert!(matches!(stale, Err(AppendError::Fenced(_))), "{stale:?}");
    b.append(session, fence_b, 10, b"ABCDE").await.unwrap();
    let stale = a.append(session, fence_a, 15, b"klmno").await;
    assert!(matches!(stale, Err(AppendError::Fenced(_))), "{stale:?}");
    assert_eq!(stored(&b.pg, session).await, b"0123456789ABCDE");

    // The runner comes back to A: A takes the lease anew, and now B is the stale one.
    let (fence_a, end) = a.take(session).await;
    assert!(fence_a > fence_b);
    assert_eq!(end, 15);
    let stale = b.append(session, fence_b, 15, b"FGHIJ").await;
    assert!(matches!(stale, Err(AppendError::Fenced(_))), "{stale:?}");
    a.append(session, fence_a, 15, b"pqrst").await.unwrap();
    assert_eq!(stored(&a.pg, session).await, b"0123456789ABCDEpqrst");
    a.stop().await;
    b.stop().await;
}

/// The takeover and the old holder's appends race: whatever the old holder had stored when the
/// new one took over is where the new one starts, and nothing the old one stores lands after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_racing_the_old_holders_appends_starts_exactly_where_they_stopped() {
    let database = database().await;
    let (a, b) = (Arc::new(Replica::new("a", &database.url)), Replica::new("b", &database.url));
    for _ in 0..5 {
        let session = Uuid::now_v7();
        let (fence_a, _) = a.take(session).await;
        // A appends 10-byte chunks as fast as it can until it is refused.
        let appending = {
            let a = a.clone();
            tokio::spawn(async move {
                let mut end = 0u64;
                loop {
                    match a.append(session, fence_a, end, b"0123456789").await {
                        Ok(()) => {
                            end += 10;
                            assert!(end < 1_000_000, "A's appends are never refused after B took over");
                        }
                        Err(AppendError::Fenced(_)) => return end,
                        Err(error) => panic!("{error}"),
                    }
                }
            })
        };
        // Let A get going (a few chunks stored), then take over mid-stream.
        agentrelay_e2e::eventually("A to store some output", || async {
            let client = a.pg.get().await.unwrap();
            let end = agentrelay_hq::cluster::stored::stored_end(&client, session).await.unwrap();
            (end >= 50).then_some(())
        })
        .await;
        let (fence_b, taken_at) = b.take(session).await;
        let a_stored_up_to = appending.await.unwrap();
        assert_eq!(
            a_stored_up_to, taken_at,
            "A was told {a_stored_up_to} bytes were stored, B took over at {taken_at}"
        );
        b.append(session, fence_b, taken_at, b"BBBBB").await.unwrap();
        let output = stored(&b.pg, session).await;
        assert_eq!(output.len() as u64, taken_at + 5);
        assert!(output.ends_with(b"9BBBBB"), "nothing of A's after B's start");
    }
    Arc::into_inner(a).unwrap().stop().await;
    b.stop().await;
}
