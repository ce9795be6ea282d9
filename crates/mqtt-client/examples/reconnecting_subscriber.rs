//! A subscriber that outlives its broker: a persistent session, automatic reconnect with
//! jittered backoff, and every connection event printed. Start it before or after the
//! broker, stop and restart the broker, and watch it come back (re-subscribing by itself
//! when the broker lost the session).
//!
//! ```text
//! cargo run -p mqtt-client --example reconnecting_subscriber -- mqtt://localhost:1883 'alerts/#'
//! ```

#![allow(clippy::print_stdout)]

use std::time::Duration;

use mqtt_client::{Backoff, Client, ConnectOptions, Event, QoS};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "mqtt://localhost:1883".into());
    let filter = args.next().unwrap_or_else(|| "alerts/#".into());

    let options = ConnectOptions::from_url(&url)?
        .client_id("reconnecting-subscriber-example")
        .clean_session(false)
        .keep_alive(Duration::from_secs(10))
        .reconnect(Some(Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(10),
            max_attempts: None,
        }))
        // Wait as long as it takes for the broker to come back.
        .request_timeout(None);
    // `start` does not wait for the broker: the subscription below is queued until the
    // first connection, and made again whenever a reconnect finds the session gone.
    let (client, mut events) = Client::start(options)?;
    let subscriber = client.clone();
    tokio::spawn(async move {
        match subscriber
            .subscribe([(filter.as_str(), QoS::AtLeastOnce)])
            .await
        {
            Ok(granted) => println!("subscribed to {filter}: {granted:?}"),
            Err(e) => println!("subscribe failed: {e}"),
        }
    });
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::Message(m)) => {
                    println!("{} {}", m.topic(), String::from_utf8_lossy(m.payload()));
                }
                Some(Event::Connected { session_present, .. }) => {
                    println!("connected (session present: {session_present})");
                }
                Some(Event::Disconnected { reason }) => println!("disconnected: {reason}"),
                Some(Event::Reconnecting { attempt, delay, cause }) => {
                    println!("reconnect attempt {attempt} in {delay:?} ({cause})");
                }
                Some(other) => println!("{other:?}"),
                None => break,
            },
            _ = tokio::signal::ctrl_c() => {
                client.disconnect().await?;
            }
        }
    }
    Ok(())
}
