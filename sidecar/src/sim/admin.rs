//! Admin endpoints under `/_sim/` (see the module doc of [`crate::sim`]).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::app::Sim;
use super::state::Customer;

type S = State<Arc<Sim>>;

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/_sim/faults", get(get_faults).post(post_faults))
        .route("/_sim/requests", get(get_requests).delete(delete_requests))
        .route("/_sim/customers", get(get_customers).post(post_customers))
        .route("/_sim/persons", get(get_persons))
        .route("/_sim/followups", get(get_followups))
        .route("/_sim/assignments", get(get_assignments))
        .route("/_sim/stats", get(get_stats))
        .route("/_sim/reset", post(post_reset))
        .with_state(sim)
}

async fn get_faults(State(sim): S) -> Response {
    Json(sim.faults_snapshot()).into_response()
}

/// Merge-patch the fault settings; `{"expire_sessions_now": true}` also drops every session.
async fn post_faults(State(sim): S, Json(patch): Json<Value>) -> Response {
    let expire = patch
        .get("expire_sessions_now")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let res = sim.with_faults(|f| match f.patched(&patch) {
        Ok(n) => {
            *f = n.clone();
            Ok(n)
        }
        Err(e) => Err(e),
    });
    match res {
        Ok(n) => {
            let expired = if expire { sim.expire_all_sessions() } else { 0 };
            Json(json!({"faults": n, "expired_sessions": expired})).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response(),
    }
}

#[derive(Deserialize)]
struct ReqQuery {
    limit: Option<usize>,
    path: Option<String>,
}

async fn get_requests(State(sim): S, Query(q): Query<ReqQuery>) -> Response {
    Json(sim.requests(q.limit.unwrap_or(usize::MAX), q.path.as_deref())).into_response()
}

async fn delete_requests(State(sim): S) -> Response {
    sim.clear_requests();
    StatusCode::NO_CONTENT.into_response()
}

async fn get_customers(State(sim): S) -> Response {
    let v: Vec<Customer> = sim.with_store(|s| s.customers.values().cloned().collect());
    Json(v).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedCustomer {
    #[serde(default)]
    ord: i64,
    #[serde(default)]
    intsort: u8,
    #[serde(default)]
    fields: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    date1: String,
    #[serde(default)]
    catename: String,
}

/// Seed customers as if typed into the ERP by hand: `[{intsort, fields:{name, khid, …}, date1?, catename?}]`.
async fn post_customers(State(sim): S, Json(list): Json<Vec<SeedCustomer>>) -> Response {
    let res: Result<Vec<i64>, String> = sim.with_store(|s| {
        list.into_iter()
            .map(|c| {
                s.seed_customer(Customer {
                    ord: c.ord,
                    intsort: c.intsort,
                    fields: c.fields,
                    date1: c.date1,
                    catename: c.catename,
                    public: false,
                    saves: 0,
                })
            })
            .collect()
    });
    match res {
        Ok(ords) => Json(json!({"ords": ords})).into_response(),
        Err(e) => (StatusCode::CONFLICT, Json(json!({"error": e}))).into_response(),
    }
}

async fn get_persons(State(sim): S) -> Response {
    let v: Vec<_> = sim.with_store(|s| s.persons.values().cloned().collect());
    Json(v).into_response()
}

async fn get_followups(State(sim): S) -> Response {
    Json(sim.with_store(|s| s.followups.clone())).into_response()
}

async fn get_assignments(State(sim): S) -> Response {
    Json(sim.with_store(|s| s.assignments.clone())).into_response()
}

async fn get_stats(State(sim): S) -> Response {
    let mut v = sim.stats.snapshot();
    if let Value::Object(m) = &mut v {
        m.insert("live_sessions".into(), json!(sim.live_sessions()));
        m.insert(
            "customers".into(),
            json!(sim.with_store(|s| s.customers.len())),
        );
    }
    Json(v).into_response()
}

async fn post_reset(State(sim): S) -> Response {
    sim.reset();
    StatusCode::NO_CONTENT.into_response()
}
