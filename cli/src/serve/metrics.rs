//! `/metrics`: the server's counters, gauges and histograms in Prometheus' text format
//! (the `prometheus` crate), plus the process' own (`process_resident_memory_bytes`,
//! `process_open_fds`, CPU seconds...).

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// Every series kiln serve exports; all names start with `kiln_`.
pub struct Metrics {
    registry: Registry,
    /// Finished HTTP requests by route and status code.
    pub requests: IntCounterVec,
    pub prompt_tokens: IntCounter,
    pub generated_tokens: IntCounter,
    /// From acceptance of a request to its first generated token (queueing + prefill).
    pub time_to_first_token: Histogram,
    /// Between two generated tokens of one sequence.
    pub time_per_output_token: Histogram,
    /// Whole generation requests, from acceptance to the last byte handed to the client.
    pub request_duration: Histogram,
    /// Sequences waiting for a slot.
    pub queue_depth: IntGauge,
    pub slots_busy: IntGauge,
    pub slots_total: IntGauge,
    /// Generation requests accepted and not yet finished (running or waiting).
    pub requests_in_flight: IntGauge,
    pub connections_open: IntGauge,
    /// Connections closed by a timeout (headers, idle, or a stalled write).
    pub connections_timed_out: IntCounter,
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid histogram options")
}

impl Metrics {
    pub fn new() -> Metrics {
        let latency = vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        let long = vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];
        let m = Metrics {
            registry: Registry::new(),
            requests: IntCounterVec::new(Opts::new("kiln_requests_total", "HTTP requests answered, by route and status"), &["route", "status"])
                .expect("valid counter options"),
            prompt_tokens: IntCounter::new("kiln_prompt_tokens_total", "Prompt tokens of accepted generation requests").expect("valid"),
            generated_tokens: IntCounter::new("kiln_generated_tokens_total", "Tokens generated").expect("valid"),
            time_to_first_token: histogram(
                "kiln_time_to_first_token_seconds",
                "From accepting a request to its first generated token",
                long.clone(),
            ),
            time_per_output_token: histogram("kiln_time_per_output_token_seconds", "Between two generated tokens of a sequence", latency),
            request_duration: histogram("kiln_request_duration_seconds", "Generation requests, from acceptance to the end of the answer", long),
            queue_depth: IntGauge::new("kiln_queue_depth", "Sequences waiting for a slot").expect("valid"),
            slots_busy: IntGauge::new("kiln_slots_busy", "Slots holding a sequence").expect("valid"),
            slots_total: IntGauge::new("kiln_slots_total", "Slots (--slots)").expect("valid"),
            requests_in_flight: IntGauge::new("kiln_requests_in_flight", "Generation requests accepted and not finished").expect("valid"),
            connections_open: IntGauge::new("kiln_connections_open", "Open HTTP connections").expect("valid"),
            connections_timed_out: IntCounter::new(
                "kiln_connections_timed_out_total",
                "Connections closed by the header, idle or write timeout",
            )
            .expect("valid"),
        };
        let r = &m.registry;
        let all: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.requests.clone()),
            Box::new(m.prompt_tokens.clone()),
            Box::new(m.generated_tokens.clone()),
            Box::new(m.time_to_first_token.clone()),
            Box::new(m.time_per_output_token.clone()),
            Box::new(m.request_duration.clone()),
            Box::new(m.queue_depth.clone()),
            Box::new(m.slots_busy.clone()),
            Box::new(m.slots_total.clone()),
            Box::new(m.requests_in_flight.clone()),
            Box::new(m.connections_open.clone()),
            Box::new(m.connections_timed_out.clone()),
        ];
        for c in all {
            r.register(c).expect("metric names are unique");
        }
        #[cfg(target_os = "linux")]
        r.register(Box::new(prometheus::process_collector::ProcessCollector::for_self())).expect("process metrics register once");
        m
    }

    /// Everything in the text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
