//! What the server sends back for one query: an answer from the records, a relayed upstream
//! answer, or an error of ours.

use std::iter;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, LowerQuery, Message, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{DNSClass, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use rand::seq::SliceRandom;

use super::{lookup, Shared};

/// TTL of our answers. Swarm's resolver says 600 s, so clients keep dead task addresses (and a
/// re-created service's old VIP) for ten minutes; 2 s makes scaling and rescheduling visible almost
/// at once, for a cost of one local query per name every 2 s per client.
const TTL_SECS: u32 = 2;

/// The hickory request handler: one per listener, all sharing the records, forwarder and counters.
pub(super) struct Handler {
    shared: Arc<Shared>,
}

impl Handler {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Answers from the records if the name is known on the asker's networks, else forwards.
    async fn respond<R: ResponseHandler>(&self, request: &Request, handle: R) -> ResponseInfo {
        if request.metadata.op_code != OpCode::Query {
            return self.fail(request, handle, ResponseCode::NotImp).await;
        }
        if request.edns.as_ref().is_some_and(|edns| edns.version() > 0) {
            // RFC 6891 §6.1.3: we speak EDNS version 0 only.
            return self.fail(request, handle, ResponseCode::BADVERS).await;
        }
        // Exactly one question, as every stub resolver sends.
        let Ok(info) = request.request_info() else {
            return self.fail(request, handle, ResponseCode::FormErr).await;
        };
        let query = info.query;
        if query.query_class() == DNSClass::IN {
            let name = lookup::normalise(&query.name().to_string());
            // Cloning the Arc releases the watch's read lock before any await.
            let records = self.shared.records.borrow().clone();
            let found = lookup::resolve(
                &records,
                request.src().ip(),
                &name,
                &self.shared.search_domains,
            );
            if let Some(addrs) = found {
                return self.answer(request, handle, query, addrs).await;
            }
        }
        self.relay(request, handle, query).await
    }

    /// Our own answer for a name known on the asker's networks: its addresses for A, and for any
    /// other type an empty NOERROR (as Docker's resolver: forwarding would leak the name upstream
    /// and could contradict us).
    async fn answer<R: ResponseHandler>(
        &self,
        request: &Request,
        mut handle: R,
        query: &LowerQuery,
        mut addrs: Vec<Ipv4Addr>,
    ) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        metadata.recursion_available = true;
        let answers: Vec<Record> = if query.query_type() == RecordType::A {
            // Clients mostly take the first address: a fresh order per answer spreads them.
            addrs.shuffle(&mut rand::rng());
            addrs
                .into_iter()
                .map(|addr| {
                    Record::from_rdata(query.original().name().clone(), TTL_SECS, RData::A(A(addr)))
                })
                .collect()
        } else {
            Vec::new()
        };
        let edns = response_edns(request);
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = &edns {
            builder.edns(edns);
        }
        let response = builder.build(
            metadata,
            answers.iter(),
            iter::empty(),
            iter::empty(),
            iter::empty(),
        );
        self.shared.answered.fetch_add(1, Ordering::Relaxed);
        match handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => send_failed(request, error),
        }
    }

    /// Forwards the query and relays the upstream's answer under the client's id and question.
    async fn relay<R: ResponseHandler>(
        &self,
        request: &Request,
        mut handle: R,
        query: &LowerQuery,
    ) -> ResponseInfo {
        let forwarded = self
            .shared
            .forwarder
            .forward(
                request.as_slice(),
                query.original(),
                request.protocol().is_datagram(),
                usize::from(request.max_payload()),
            )
            .await;
        let answer: Message = match forwarded {
            Ok(answer) => answer,
            Err(error) => {
                tracing::debug!(src = %request.src(), %query, %error, "dns forward failed");
                return self.fail(request, handle, ResponseCode::ServFail).await;
            }
        };
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        metadata.authoritative = answer.metadata.authoritative;
        metadata.truncation = answer.metadata.truncation;
        metadata.authentic_data = answer.metadata.authentic_data;
        metadata.response_code = answer.metadata.response_code;
        let edns = response_edns(request).map(|mut edns| {
            if let Some(upstream) = &answer.edns {
                edns.set_dnssec_ok(upstream.flags().dnssec_ok);
            }
            edns
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = &edns {
            builder.edns(edns);
        }
        let response = builder.build(
            metadata,
            answer.answers.iter(),
            answer.authorities.iter(),
            iter::empty(),
            answer.additionals.iter(),
        );
        self.shared.forwarded.fetch_add(1, Ordering::Relaxed);
        match handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => send_failed(request, error),
        }
    }

    /// An error answer of ours, with no records.
    async fn fail<R: ResponseHandler>(
        &self,
        request: &Request,
        mut handle: R,
        code: ResponseCode,
    ) -> ResponseInfo {
        self.shared.failed.fetch_add(1, Ordering::Relaxed);
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        metadata.response_code = code;
        let edns = response_edns(request);
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = &edns {
            builder.edns(edns);
        }
        match handle
            .send_response(builder.build_no_records(metadata))
            .await
        {
            Ok(info) => info,
            Err(error) => send_failed(request, error),
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        self.respond(request, response_handle).await
    }
}

/// The OPT record of a response: present if the query had one (RFC 6891 §7), advertising the
/// client's own payload size, which is also what hickory truncates UDP answers to.
fn response_edns(request: &Request) -> Option<Edns> {
    request.edns.as_ref().map(|_| {
        let mut edns = Edns::new();
        edns.set_max_payload(request.max_payload());
        edns
    })
}

/// What the handler reports when the response could not be sent (the client went away).
fn send_failed(request: &Request, error: impl std::fmt::Display) -> ResponseInfo {
    tracing::debug!(src = %request.src(), %error, "dns response not sent");
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}
