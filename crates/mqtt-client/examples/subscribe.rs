//! Subscribes to a filter and prints what arrives, `topic payload` per line, until `count`
//! messages (default: for ever).
//!
//! ```text
//! cargo run -p mqtt-client --example subscribe -- mqtt://localhost:1883 'sensors/#' 10
//! ```

#![allow(clippy::print_stdout)]

use mqtt_client::{Client, ConnectOptions, Event, QoS};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "mqtt://localhost:1883".into());
    let filter = args.next().unwrap_or_else(|| "#".into());
    let count: Option<usize> = args.next().map(|n| n.parse()).transpose()?;

    let (client, mut events) = Client::connect(ConnectOptions::from_url(&url)?).await?;
    let granted = client
        .subscribe([(filter.as_str(), QoS::AtLeastOnce)])
        .await?;
    println!("subscribed to {filter}: {granted:?}");
    let mut seen = 0;
    while let Some(event) = events.recv().await {
        if let Event::Message(message) = event {
            println!(
                "{} {}",
                message.topic(),
                String::from_utf8_lossy(message.payload())
            );
            seen += 1;
            if count.is_some_and(|n| seen >= n) {
                break;
            }
        }
    }
    client.disconnect().await?;
    Ok(())
}
