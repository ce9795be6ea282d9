//! `mqtt rr`: request/response as `mosquitto_rr` does it. Subscribe to the response topic,
//! publish the request with that topic as its MQTT 5 Response Topic once the subscription is
//! acknowledged, print the first response as `mqtt sub` would, and exit (status 27 after `-W`
//! seconds without a response).

use std::process::ExitCode;

use bytes::Bytes;
use clap::Args;
use mqtt_client::{OutgoingMessage, ProtocolVersion, TopicName};

use crate::connection::{ConnectionArgs, FileDefaults, UsageError};
use crate::publish::usage_failure_for;
use crate::subscribe::{self, OutputArgs, SubArgs};

/// `mqtt rr` options: `mosquitto_rr`'s.
#[derive(Args, Debug, Clone, Default)]
#[command(disable_help_flag = true, args_override_self = true)]
pub struct RrArgs {
    /// Topic the request is published to.
    #[arg(short = 't', long = "topic", allow_hyphen_values = true)]
    pub topic: Option<String>,
    /// Response topic: subscribed to, and sent as the request's Response Topic.
    #[arg(short = 'e', long = "response-topic", allow_hyphen_values = true)]
    pub response_topic: Option<String>,
    /// The request's payload.
    #[arg(short = 'm', long = "message", allow_hyphen_values = true)]
    pub message: Option<String>,
    /// The request's payload, from a file.
    #[arg(short = 'f', long = "file", allow_hyphen_values = true)]
    pub file: Option<std::path::PathBuf>,
    /// An empty request.
    #[arg(short = 'n', long = "null-message")]
    pub null_message: bool,
    /// The request's payload, from stdin.
    #[arg(short = 's', long = "stdin-file")]
    pub stdin: bool,
    /// How the response is printed (as `mqtt sub`), and `-W`: exit with status 27 after this
    /// many seconds without a response.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Connection options.
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

impl RrArgs {
    /// The request's payload, read before connecting.
    fn payload(&self) -> Result<Bytes, UsageError> {
        let missing =
            || UsageError::new("All of topic, message, and response topic must be supplied.");
        if self.topic.is_none() || self.response_topic.is_none() {
            return Err(missing());
        }
        if let Some(m) = &self.message {
            return Ok(Bytes::from(m.clone().into_bytes()));
        }
        if self.null_message {
            return Ok(Bytes::new());
        }
        if let Some(path) = &self.file {
            return std::fs::read(path).map(Bytes::from).map_err(|_| {
                UsageError::with_layout(
                    format!("Unable to open file \"{}\".", path.display()),
                    crate::connection::Layout::Bare,
                )
            });
        }
        if self.stdin {
            let mut all = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut all)
                .map_err(|e| UsageError::new(crate::connection::strerror(&e)))?;
            return Ok(Bytes::from(all));
        }
        Err(missing())
    }
}

/// Runs `mqtt rr`.
pub async fn run(args: RrArgs, file: &FileDefaults) -> ExitCode {
    let quiet = args.connection.quiet;
    let payload = match args.payload() {
        Ok(p) => p,
        Err(e) => return usage_failure_for("rr", &e, quiet),
    };
    let (Some(topic), Some(response)) = (args.topic.clone(), args.response_topic.clone()) else {
        return ExitCode::from(1);
    };
    let Ok(topic) = TopicName::try_from(topic.as_str()) else {
        let e = UsageError::new(format!(
            "Invalid publish topic '{topic}', does it contain '+' or '#'?"
        ));
        return usage_failure_for("rr", &e, quiet);
    };
    let Ok(response_name) = TopicName::try_from(response.as_str()) else {
        let e = UsageError::new(format!(
            "Invalid response topic '{response}', does it contain '+' or '#'?"
        ));
        return usage_failure_for("rr", &e, quiet);
    };
    let resolved_properties = match args.connection.resolve(file) {
        Ok(r) => r.properties,
        Err(e) => return usage_failure_for("rr", &e, quiet),
    };
    if resolved_properties.publish.response_topic.is_some() {
        // `rr` sets the response topic itself, as mosquitto_rr does.
        let e = UsageError::with_layout(
            "Error in PUBLISH properties: Duplicate response topic.",
            crate::connection::Layout::Plain,
        );
        return usage_failure_for("rr", &e, quiet);
    }
    let sub = SubArgs {
        topics: vec![response],
        count: Some("1".into()),
        output: args.output.clone(),
        connection: args.connection.clone(),
        ..SubArgs::default()
    };
    let request: subscribe::Request = Box::new(move |resolved| {
        let mut properties = resolved.properties.publish.clone();
        if resolved.version == ProtocolVersion::V5 {
            properties.response_topic = Some(response_name.clone());
        }
        OutgoingMessage::with_topic(topic.clone(), payload.clone())
            .qos(resolved.qos)
            .properties(properties)
    });
    subscribe::run_as("rr", sub, file, Some(request)).await
}
