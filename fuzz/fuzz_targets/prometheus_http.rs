//! What a client of controld's `--metrics` endpoint sends: the request
//! head parsed (httparse) and routed by `metrics::answer`, and the operator
//! socket's line reader over the same bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| esprit_controld::fuzz::prometheus_http(data));
