//! [`Bus`] over NATS: core subjects for live output and requests, and a JetStream stream
//! (`<prefix>_feed`, file storage, an hour of history) for the change feed, read by each replica
//! through an ordered consumer that picks up where it was after a reconnect.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::push;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};

use super::{Bus, BusError, BusMessage, DurableAck, Subjects, Subscription};

/// How long the change feed keeps a change: a replica away longer reloads from PostgreSQL.
const FEED_AGE: Duration = Duration::from_secs(3600);
/// How long to wait for the server to answer a round trip before asking again.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(5);

/// NATS, as one replica's connection to the others.
pub struct NatsBus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    stream: String,
}

fn down(error: impl std::fmt::Display) -> BusError {
    BusError::Down(error.to_string())
}

impl NatsBus {
    /// Connects to `url` (retrying in the background if NATS is down at first) and makes sure
    /// the change feed's stream exists.
    pub async fn connect(url: &str, subjects: &Subjects, name: &str) -> anyhow::Result<Self> {
        use anyhow::Context;
        let client = async_nats::ConnectOptions::new()
            .name(format!("agentrelay-hq {name}"))
            // Publishes made during an outage wait in the client (up to this many) and go out
            // after the reconnect.
            .client_capacity(65_536)
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .with_context(|| format!("cannot connect to NATS at {url}"))?;
        let jetstream = jetstream::new(client.clone());
        let stream = format!("{}_feed", subjects.prefix());
        let config = jetstream::stream::Config {
            name: stream.clone(),
            subjects: vec![subjects.feed_all()],
            max_age: FEED_AGE,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        jetstream.get_or_create_stream(config).await.with_context(|| {
            format!("cannot create the JetStream stream {stream} (is JetStream on? nats-server -js)")
        })?;
        Ok(Self { client, jetstream, stream })
    }

    /// Returns once the server has processed everything this connection sent before, such as a
    /// SUB. `Client::flush` is not enough: it only writes to the socket, and the server reads
    /// each connection on its own, so another replica's request could still find no responders.
    /// A request to a subject nobody subscribes to is answered by the server itself ("no
    /// responders"), after everything sent before it on this connection.
    async fn round_trip(&self) -> Result<(), BusError> {
        loop {
            let probe = async_nats::Request::new().timeout(Some(ROUND_TRIP_TIMEOUT));
            match self.client.send_request(self.client.new_inbox(), probe).await {
                Ok(_) => return Ok(()),
                Err(error) => match error.kind() {
                    async_nats::RequestErrorKind::NoResponders => return Ok(()),
                    // Lost in a reconnect (which renews the subscriptions): ask again.
                    async_nats::RequestErrorKind::TimedOut => {}
                    async_nats::RequestErrorKind::Other => return Err(down(error)),
                },
            }
        }
    }

    /// Deletes the change feed's stream (tests leave nothing behind).
    pub async fn delete_stream(&self) -> anyhow::Result<()> {
        self.jetstream.delete_stream(&self.stream).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }
}

fn message(message: async_nats::Message) -> BusMessage {
    BusMessage {
        subject: message.subject.to_string(),
        payload: message.payload,
        reply: message.reply.map(|r| r.to_string()),
    }
}

impl Bus for NatsBus {
    fn publish(&self, subject: String, payload: Bytes) -> BoxFuture<'_, Result<(), BusError>> {
        async move { self.client.publish(subject, payload).await.map_err(down) }.boxed()
    }

    fn subscribe(&self, pattern: String) -> BoxFuture<'_, Result<Subscription, BusError>> {
        async move {
            let subscriber = self.client.subscribe(pattern).await.map_err(down)?;
            // Not before the server has the SUB: another replica may request on it next.
            self.round_trip().await?;
            let stream: Subscription = Box::pin(subscriber.map(message));
            Ok(stream)
        }
        .boxed()
    }

    fn request(
        &self,
        subject: String,
        payload: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Bytes, BusError>> {
        async move {
            match tokio::time::timeout(timeout, self.client.request(subject.clone(), payload)).await {
                Ok(Ok(answer)) => Ok(answer.payload),
                Ok(Err(error)) => match error.kind() {
                    async_nats::RequestErrorKind::NoResponders => Err(BusError::NoResponders(subject)),
                    async_nats::RequestErrorKind::TimedOut => Err(BusError::TimedOut(subject)),
                    async_nats::RequestErrorKind::Other => Err(down(error)),
                },
                Err(_) => Err(BusError::TimedOut(subject)),
            }
        }
        .boxed()
    }

    fn publish_durable(
        &self,
        subject: String,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<DurableAck, BusError>> {
        async move {
            let ack = self.jetstream.publish(subject, payload).await.map_err(down)?;
            Ok(async move { ack.await.map(|_| ()).map_err(down) }.boxed())
        }
        .boxed()
    }

    fn follow(&self, pattern: String) -> BoxFuture<'_, Result<Subscription, BusError>> {
        async move {
            let stream = self.jetstream.get_stream(&self.stream).await.map_err(down)?;
            let consumer = stream
                .create_consumer(push::OrderedConfig {
                    deliver_subject: self.client.new_inbox(),
                    filter_subject: pattern,
                    deliver_policy: jetstream::consumer::DeliverPolicy::New,
                    ..Default::default()
                })
                .await
                .map_err(down)?;
            let messages = consumer.messages().await.map_err(down)?;
            let stream: Subscription = Box::pin(messages.filter_map(|m| async move {
                match m {
                    Ok(m) => Some(BusMessage {
                        subject: m.subject.to_string(),
                        payload: m.payload.clone(),
                        reply: None,
                    }),
                    Err(error) => {
                        tracing::warn!(%error, "change feed consumer");
                        None
                    }
                }
            }));
            Ok(stream)
        }
        .boxed()
    }

    fn is_up(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}
