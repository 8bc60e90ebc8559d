//! Request/response across threads: a service and its clients. Each client
//! thread builds requests around real JSON (one crates.io index entry each)
//! and sends them over `std::sync::mpsc` to the server threads, in turn,
//! keeping up to [`WINDOW`] in flight. A server parses the request into a
//! `serde_json::Value`, answers with a summary of the entry (its
//! dependencies sorted, its feature names, a census of the tree), serialises
//! the answer and sends it back; the client parses the answer and hashes it.
//!
//! Blocks cross threads both ways: a request's text is allocated by the
//! client and freed by the server, an answer's by the server and freed by the
//! client (so are the channels' own message blocks).

use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

use serde_json::{json, Value};

use super::Fnv;

/// Requests a client keeps in flight.
pub const WINDOW: usize = 32;

struct Request {
    body: String,
    reply: Sender<String>,
}

/// Objects, arrays, strings and string bytes in a tree.
fn census(v: &Value, counts: &mut [u64; 4]) {
    match v {
        Value::Object(m) => {
            counts[0] += 1;
            for (k, v) in m {
                counts[3] += k.len() as u64;
                census(v, counts);
            }
        }
        Value::Array(a) => {
            counts[1] += 1;
            a.iter().for_each(|v| census(v, counts));
        }
        Value::String(s) => {
            counts[2] += 1;
            counts[3] += s.len() as u64;
        }
        _ => {}
    }
}

/// The server's answer to one request.
fn answer(request: &Value) -> Value {
    let entry = &request["entry"];
    let mut deps: Vec<(&str, &str, &str)> = entry["deps"]
        .as_array()
        .map(|deps| {
            deps.iter()
                .map(|d| {
                    let s = |k: &str| d[k].as_str().unwrap_or("");
                    (s("name"), s("req"), s("kind"))
                })
                .collect()
        })
        .unwrap_or_default();
    deps.sort_unstable();
    let features: Vec<&String> = entry["features"].as_object().map(|f| f.keys().collect()).unwrap_or_default();
    let mut counts = [0; 4];
    census(entry, &mut counts);
    json!({
        "id": request["id"],
        "name": entry.get("name").or_else(|| entry.get("path")),
        "version": entry["vers"],
        "yanked": entry["yanked"],
        "dependencies": deps.iter().map(|(n, r, k)| json!({ "name": n, "req": r, "kind": k })).collect::<Vec<_>>(),
        "features": features,
        "census": { "objects": counts[0], "arrays": counts[1], "strings": counts[2], "text_bytes": counts[3] },
    })
}

fn server(requests: Receiver<Request>) {
    for r in requests {
        let request: Value = serde_json::from_str(&r.body).expect("a request is JSON");
        drop(r.body); // the client's text, freed here
        let text = serde_json::to_string(&answer(&request)).expect("serialise the answer");
        // The client hangs up only after its last answer.
        r.reply.send(text).expect("client gone");
    }
}

/// Hashes one answer; answers arrive in any order, so the client adds the
/// hashes up.
fn receive(replies: &Receiver<String>) -> u64 {
    let text = replies.recv().expect("server gone");
    let v: Value = serde_json::from_str(&text).expect("an answer is JSON");
    let mut h = Fnv::new();
    h.u64(v["id"].as_u64().expect("id"));
    h.str(&text);
    h.u64(v["dependencies"].as_array().map_or(0, Vec::len) as u64);
    h.finish()
}

fn client(c: usize, clients: usize, entries: &[&str], passes: usize, servers: &[Sender<Request>]) -> u64 {
    let (reply, replies) = mpsc::channel();
    let (mut sum, mut in_flight, mut sent) = (0u64, 0, 0usize);
    for pass in 0..passes {
        for (i, entry) in entries.iter().enumerate().skip(c).step_by(clients) {
            let id = pass * entries.len() + i;
            let body = format!(r#"{{"id":{id},"op":"summary","pass":{pass},"entry":{entry}}}"#);
            servers[sent % servers.len()].send(Request { body, reply: reply.clone() }).expect("server gone");
            sent += 1;
            in_flight += 1;
            if in_flight == WINDOW {
                sum = sum.wrapping_add(receive(&replies));
                in_flight -= 1;
            }
        }
    }
    for _ in 0..in_flight {
        sum = sum.wrapping_add(receive(&replies));
    }
    sum
}

/// `clients` threads send every entry `passes` times (each client a share)
/// to `servers` threads; the digest of every answer.
pub fn run(json: &[Vec<String>], clients: usize, servers: usize, passes: usize) -> u64 {
    let entries: Vec<&str> = json.iter().flatten().map(String::as_str).collect();
    let entries = &entries[..];
    thread::scope(|s| {
        let (senders, servers): (Vec<Sender<Request>>, Vec<_>) = (0..servers)
            .map(|_| {
                let (tx, rx) = mpsc::channel();
                (tx, s.spawn(move || server(rx)))
            })
            .unzip();
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let senders = senders.clone();
                s.spawn(move || client(c, clients, entries, passes, &senders))
            })
            .collect();
        drop(senders); // the servers stop when the clients' senders are gone
        let mut h = Fnv::new();
        for c in handles {
            h.u64(c.join().expect("client panicked"));
        }
        // Joined, not left to the scope: the scope's end waits only for
        // the threads' closures, not for their thread-local destructors
        // (the allocator's cache flush), which the caller's statistics
        // check must not race.
        for server in servers {
            server.join().expect("server panicked");
        }
        h.finish()
    })
}
