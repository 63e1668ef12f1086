//! The bus contract: the same tests against the in-process bus and NATS (JetStream on), each
//! seen from two "replicas" (two handles on one bus; two connections to one NATS).

use std::sync::Arc;
use std::time::Duration;

use agentrelay_e2e::deps::TestNats;
use agentrelay_hq::bus::nats::NatsBus;
use agentrelay_hq::bus::{Bus, BusError, MemoryBus, Subjects, answer};
use bytes::Bytes;
use futures_util::StreamExt;

/// Two replicas' handles on each implementation, and the subjects of this test.
async fn both() -> Vec<(&'static str, Arc<dyn Bus>, Arc<dyn Bus>, Subjects, Option<TestNats>)> {
    let memory = MemoryBus::new();
    let nats = TestNats::start();
    let subjects = Subjects::new(&nats.prefix);
    let a = NatsBus::connect(&nats.url, &subjects, "a").await.unwrap();
    let b = NatsBus::connect(&nats.url, &subjects, "b").await.unwrap();
    vec![
        ("memory", Arc::new(memory.clone()), Arc::new(memory), Subjects::new("mem"), None),
        ("nats", Arc::new(a), Arc::new(b), subjects, Some(nats)),
    ]
}

async fn next(sub: &mut agentrelay_hq::bus::Subscription) -> Bytes {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("a message in time")
        .expect("open")
        .payload
}

#[tokio::test]
async fn live_messages_reach_subscribers_in_order_by_subject() {
    for (name, a, b, subjects, _nats) in both().await {
        let session = uuid::Uuid::now_v7();
        let mut mine = b.subscribe(subjects.output(session)).await.unwrap();
        let mut other = b.subscribe(subjects.output(uuid::Uuid::now_v7())).await.unwrap();
        // Subscribed means the bus has it: the first message after, from the other replica, arrives.
        for i in 0..100u32 {
            a.publish(subjects.output(session), Bytes::from(i.to_be_bytes().to_vec())).await.unwrap();
        }
        for i in 0..100u32 {
            assert_eq!(next(&mut mine).await, Bytes::from(i.to_be_bytes().to_vec()), "{name}: in order");
        }
        let quiet = tokio::time::timeout(Duration::from_millis(200), other.next()).await;
        assert!(quiet.is_err(), "{name}: another session's subscriber got nothing");
    }
}

#[tokio::test]
async fn a_request_is_answered_by_its_subscriber_or_finds_nobody() {
    for (name, a, b, subjects, _nats) in both().await {
        let session = uuid::Uuid::now_v7();
        let nobody =
            a.request(subjects.orders(session), Bytes::from_static(b"x"), Duration::from_secs(2)).await;
        assert!(matches!(nobody, Err(BusError::NoResponders(_))), "{name}: {nobody:?}");
        let mut orders = b.subscribe(subjects.orders(session)).await.unwrap();
        let server = b.clone();
        let serving = tokio::spawn(async move {
            let message = orders.next().await.unwrap();
            assert_eq!(message.payload, Bytes::from_static(b"keys"));
            answer(server.as_ref(), &message, Bytes::from_static(b"taken")).await;
        });
        let answered =
            a.request(subjects.orders(session), Bytes::from_static(b"keys"), Duration::from_secs(5)).await;
        assert_eq!(answered.unwrap(), Bytes::from_static(b"taken"), "{name}");
        serving.await.unwrap();
    }
}

#[tokio::test]
async fn the_change_feed_delivers_every_change_in_order() {
    for (name, a, b, subjects, _nats) in both().await {
        let mut feed = b.follow(subjects.feed_all()).await.unwrap();
        let mut acks = Vec::new();
        for i in 0..50u32 {
            let kind = if i % 2 == 0 { "session" } else { "runner" };
            // Acknowledged later: publishes may overlap, and the order still holds.
            acks.push(
                a.publish_durable(subjects.feed(kind), Bytes::from(i.to_be_bytes().to_vec())).await.unwrap(),
            );
        }
        for ack in acks {
            ack.await.unwrap();
        }
        for i in 0..50u32 {
            assert_eq!(next(&mut feed).await, Bytes::from(i.to_be_bytes().to_vec()), "{name}: in order");
        }
        assert!(a.is_up() && b.is_up(), "{name}");
    }
}
