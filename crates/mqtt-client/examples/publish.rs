//! Publishes one message and waits until the broker has it.
//!
//! ```text
//! cargo run -p mqtt-client --example publish -- mqtt://localhost:1883 sensors/7/temperature 21.5
//! ```

#![allow(clippy::print_stdout)]

use mqtt_client::{Client, ConnectOptions, QoS};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "mqtt://localhost:1883".into());
    let topic = args.next().unwrap_or_else(|| "example/topic".into());
    let payload = args.next().unwrap_or_else(|| "hello".into());

    let (client, _events) = Client::connect(ConnectOptions::from_url(&url)?).await?;
    // Resolves when the broker has acknowledged (PUBACK for QoS 1).
    client
        .publish(&topic, payload, QoS::AtLeastOnce, false)
        .await?;
    println!("published to {topic}");
    // Flushes anything still in flight, then says DISCONNECT.
    client.disconnect().await?;
    Ok(())
}
