//! How the steps' evidence (`happy_istio::evidence`) reaches the reports. A step records it as a
//! `tracing` event; cucumber's tracing integration (its `tracing` feature) hands each event to
//! the writers as the step's log (`Scenario::Log`), and waits for the step's span to close
//! before it reports the step's end, so a log always lands on the step that wrote it. Cucumber
//! JSON then keeps it among the step's `embeddings`, and the recorder copies it into `run.json`.
//!
//! Only evidence passes ([`filter`]): the spans cucumber opens for scenarios, hooks and steps
//! (which that waiting needs) and the events of target `happy::evidence`; nothing of the
//! libraries' own logging. The console leaves the logs out ([`WithoutLogs`]): the evidence is
//! in the reports, and a console line per observation would bury the steps.

use std::fmt;

use cucumber::{Event, Writer, event, parser, writer};
use happy_istio::evidence;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer as FmtWriter;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The target of cucumber's own spans (`cucumber::tracing`: the scenario, hook and step spans it
/// waits on); they are at level ERROR so that a filter keeps them.
const CUCUMBER_SPANS: &str = "cucumber";

/// What the subscriber lets through: cucumber's spans and the evidence events.
pub(super) fn filter() -> Targets {
    Targets::new()
        .with_target(CUCUMBER_SPANS, Level::ERROR)
        .with_target(evidence::TARGET, Level::INFO)
}

/// Formats an evidence event as its message alone (`Evidence::to_message`): no time, level,
/// target or span, which would only have to be taken off again.
pub(super) struct MessageOnly;

impl<S, N> FormatEvent<S, N> for MessageOnly
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: FmtWriter<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let mut message = Message(String::new());
        event.record(&mut message);
        writer.write_str(&message.0)
    }
}

/// The `message` field of an event.
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        // `info!("{}", text)` records the message as `fmt::Arguments`, whose Debug is the text.
        if field.name() == "message" {
            use fmt::Write as _;
            let _ = write!(self.0, "{value:?}");
        }
    }
}

/// A console writer without the steps' logs.
pub(super) struct WithoutLogs<Wr>(pub Wr);

fn is_log<W>(ev: &parser::Result<Event<event::Cucumber<W>>>) -> bool {
    use event::{Cucumber, Feature, Rule, Scenario};
    let Ok(ev) = ev else {
        return false;
    };
    match &ev.value {
        Cucumber::Feature(_, Feature::Scenario(_, sc))
        | Cucumber::Feature(_, Feature::Rule(_, Rule::Scenario(_, sc))) => {
            matches!(sc.event, Scenario::Log(_))
        }
        _ => false,
    }
}

impl<W, Wr: Writer<W>> Writer<W> for WithoutLogs<Wr> {
    type Cli = Wr::Cli;

    async fn handle_event(
        &mut self,
        ev: parser::Result<Event<event::Cucumber<W>>>,
        cli: &Self::Cli,
    ) {
        if !is_log(&ev) {
            self.0.handle_event(ev, cli).await;
        }
    }
}

impl<W, Val, Wr: writer::Arbitrary<W, Val>> writer::Arbitrary<W, Val> for WithoutLogs<Wr> {
    async fn write(&mut self, val: Val) {
        self.0.write(val).await;
    }
}

impl<Wr: writer::NonTransforming> writer::NonTransforming for WithoutLogs<Wr> {}
