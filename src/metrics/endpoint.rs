//! The Prometheus endpoint: `/metrics` (the counters, encoded with
//! prometheus-client at scrape time) and `/healthz`, served with hyper on
//! `--metrics-addr`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::top::{METRICS_TOP, Ranking};
use super::{Metrics, POLICY, series_name};
use crate::state::Shared;

/// Reads the server's counters at scrape time.
#[derive(Debug)]
struct ServerCollector {
    shared: Arc<Shared>,
}

impl Collector for ServerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.shared;
        let m = &s.metrics;
        let counter = |enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64| {
            let metric = ConstCounter::new(v);
            metric.encode(enc.encode_descriptor(name, help, None, metric.metric_type())?)
        };
        let gauge = |enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64| {
            let metric = ConstGauge::new(v);
            metric.encode(enc.encode_descriptor(name, help, None, metric.metric_type())?)
        };
        counter(
            &mut encoder,
            "tollgate_commands",
            "Commands processed.",
            m.commands(),
        )?;
        counter(
            &mut encoder,
            "tollgate_connections_received",
            "Connections accepted.",
            Metrics::get(&m.connections_received),
        )?;
        counter(
            &mut encoder,
            "tollgate_rejected_connections",
            "Connections refused at the client cap.",
            Metrics::get(&m.rejected_connections),
        )?;
        counter(
            &mut encoder,
            "tollgate_protocol_errors",
            "Connections closed for broken RESP.",
            Metrics::get(&m.protocol_errors),
        )?;
        counter(
            &mut encoder,
            "tollgate_auth_failures",
            "AUTH attempts with a wrong user or password.",
            Metrics::get(&m.auth_failures),
        )?;
        counter(
            &mut encoder,
            "tollgate_evicted_clients",
            "Clients closed because all clients' unanswered input passed maxmemory_clients.",
            Metrics::get(&s.clients.evicted),
        )?;
        counter(
            &mut encoder,
            "tollgate_cluster_moved",
            "Keyed commands answered MOVED (cluster mode).",
            Metrics::get(&m.cluster_moved),
        )?;
        counter(
            &mut encoder,
            "tollgate_cluster_tryagain",
            "Keyed commands answered TRYAGAIN while their slot was handed over.",
            Metrics::get(&m.cluster_tryagain),
        )?;
        gauge(
            &mut encoder,
            "tollgate_cluster_slots_served",
            "Hash slots this node serves (cluster mode).",
            s.cluster.slots_served() as i64,
        )?;
        counter(
            &mut encoder,
            "tollgate_evicted_keys",
            "States dropped to stay under maxmemory (volatile-ttl).",
            s.engine.store.evicted_keys(),
        )?;
        gauge(
            &mut encoder,
            "tollgate_memory_dataset_bytes",
            "Bytes the store holds by its own count (what maxmemory bounds).",
            s.engine.store.used_memory() as i64,
        )?;
        gauge(
            &mut encoder,
            "tollgate_maxmemory_bytes",
            "The maxmemory bound (0: none).",
            s.engine.store.maxmemory().0 as i64,
        )?;
        gauge(
            &mut encoder,
            "tollgate_connected_clients",
            "Clients connected now.",
            s.clients.count() as i64,
        )?;
        gauge(
            &mut encoder,
            "tollgate_blocked_clients",
            "Clients waiting (WAIT).",
            s.waits.waiting() as i64,
        )?;
        gauge(
            &mut encoder,
            "tollgate_keys",
            "Live limiter states.",
            s.engine.store.len() as i64,
        )?;
        gauge(
            &mut encoder,
            "tollgate_uptime_seconds",
            "Seconds since start.",
            s.started.elapsed().as_secs() as i64,
        )?;
        let st = s.persistence.status(&s.engine.store);
        gauge(
            &mut encoder,
            "tollgate_snapshot_last_success_timestamp_seconds",
            "Unix time of the last good snapshot.",
            st.last_save as i64,
        )?;
        gauge(
            &mut encoder,
            "tollgate_snapshot_last_ok",
            "1 if the last snapshot attempt succeeded.",
            i64::from(st.last_ok),
        )?;
        counter(
            &mut encoder,
            "tollgate_snapshot_failures",
            "Snapshot attempts that failed.",
            st.failures,
        )?;

        let rls = s.rls.counts.read();
        let mut calls = encoder.encode_descriptor(
            "tollgate_rls_requests",
            "Envoy rate limit service calls (gRPC), by domain and answer; domains nobody configured are counted as (unknown).",
            None,
            MetricType::Counter,
        )?;
        for (domain, answers, _) in &rls {
            for (answer, v) in crate::rls::Answer::ALL.iter().zip(answers) {
                let labels = [("domain", domain.as_str()), ("code", answer.name())];
                ConstCounter::new(*v).encode(calls.encode_family(&labels)?)?;
            }
        }
        let mut shadow = encoder.encode_descriptor(
            "tollgate_rls_shadow_over_limit",
            "Shadow-mode descriptors over their limit (answered OK), by domain.",
            None,
            MetricType::Counter,
        )?;
        for (domain, _, over) in &rls {
            let labels = [("domain", domain.as_str())];
            ConstCounter::new(*over).encode(shadow.encode_family(&labels)?)?;
        }
        let mut reservations = encoder.encode_descriptor(
            "tollgate_reservations",
            "Reservations opened (LIMIT.RESERVE admitted), settled (LIMIT.SETTLE) and refunded (LIMIT.REFUND).",
            None,
            MetricType::Counter,
        )?;
        for (event, v) in [
            ("opened", &m.reservations_opened),
            ("settled", &m.reservations_settled),
            ("refunded", &m.reservations_refunded),
        ] {
            let labels = [("event", event)];
            ConstCounter::new(Metrics::get(v)).encode(reservations.encode_family(&labels)?)?;
        }
        let now = s.engine.clock.now();
        for (name, help, ranking) in [
            (
                "tollgate_top_checks",
                "The keys checked most over the last one to two minutes (estimated; see LIMIT.TOP), by rank from 1.",
                Ranking::Checks,
            ),
            (
                "tollgate_top_denials",
                "The keys denied most over the last one to two minutes (estimated; see LIMIT.TOP), by rank from 1.",
                Ranking::Denials,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (rank, h) in m.top.heaviest(ranking, METRICS_TOP, now).iter().enumerate() {
                let rank = (rank + 1).to_string();
                let key = String::from_utf8_lossy(&h.key);
                let labels = [("rank", rank.as_str()), ("key", key.as_ref())];
                let count = i64::try_from(h.count).unwrap_or(i64::MAX);
                ConstGauge::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut checks = encoder.encode_descriptor(
            "tollgate_checks",
            "Rate-limit checks answered, by algorithm (policy: policy checks) and result.",
            None,
            MetricType::Counter,
        )?;
        for i in 0..=POLICY {
            for (result, v) in [("allowed", m.allowed(i)), ("denied", m.denied(i))] {
                let labels = [("algorithm", series_name(i)), ("result", result)];
                ConstCounter::new(v).encode(checks.encode_family(&labels)?)?;
            }
        }
        let mut latency = encoder.encode_descriptor(
            "tollgate_check_duration_seconds",
            "Time from a check's dispatch to its reply (held replies excluded). Sampled: one check in 8 per thread is timed, so _count is the checks timed; tollgate_checks counts every check exactly.",
            None,
            MetricType::Histogram,
        )?;
        for i in 0..=POLICY {
            let labels = [("algorithm", series_name(i))];
            let (sum, count, buckets) = m.latency(i);
            latency
                .encode_family(&labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    sum, count, &buckets, None,
                )?;
        }
        Ok(())
    }
}

/// The Prometheus text for the server's current counters.
pub fn render(shared: &Arc<Shared>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ServerCollector {
        shared: shared.clone(),
    }));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!("cannot encode metrics: {e}");
    }
    out
}

fn respond(shared: &Arc<Shared>, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &'static str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(content_type),
        );
        r
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            render(shared),
        ),
        (&Method::GET, "/healthz") => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// Serves `/metrics` and `/healthz` until shutdown.
pub async fn serve_http(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("metrics on http://{addr}/metrics");
    }
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let response = respond(&shared, &req);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    connections.shutdown().await;
}
