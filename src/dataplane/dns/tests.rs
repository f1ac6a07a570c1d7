//! The server over real sockets on loopback: clients bind 127.0.0.2, 127.0.0.3, ... so that the
//! source address, which scopes the answers, is under the test's control. Servers listen on
//! 127.0.0.1 port 0 and the test reads the port from `listening()`.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::*;

/// How long a test waits for an answer or a state before failing.
const DEADLINE: Duration = Duration::from_secs(10);

const NET_A: &str = "net-a";
const NET_B: &str = "net-b";
/// A container on network A only.
const ON_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// A container on network B only.
const ON_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// A container on both networks.
const ON_AB: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
/// An address that is no container of this node.
const STRANGER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);

/// The name the fake upstream knows, and its address.
const EXTERNAL: &str = "external.example.";
const EXTERNAL_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 77);

fn v4(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

fn fixture() -> Records {
    let mut records = Records::default();
    records.networks_of.insert(ON_A, vec![NET_A.into()]);
    records.networks_of.insert(ON_B, vec![NET_B.into()]);
    records
        .networks_of
        .insert(ON_AB, vec![NET_A.into(), NET_B.into()]);
    records.add_name(NET_A, "web", [v4(10, 1, 0, 100)]);
    records.add_name(
        NET_A,
        "tasks.web",
        [v4(10, 1, 0, 10), v4(10, 1, 0, 11), v4(10, 1, 0, 12)],
    );
    records.add_name(NET_A, "api", [v4(10, 1, 0, 20), v4(10, 1, 0, 21)]);
    records.add_name(NET_A, "web.1.abcdef", [v4(10, 1, 0, 10)]);
    records.add_name(NET_B, "db", [v4(10, 2, 0, 100)]);
    records.add_name(NET_B, "tasks.web", [v4(10, 1, 0, 11), v4(10, 2, 0, 13)]);
    records
}

/// A server on 127.0.0.1 with `records`, and the sender that swaps them.
struct Running {
    server: DnsServer,
    addr: SocketAddr,
    records: watch::Sender<Arc<Records>>,
}

async fn start(records: Records, upstreams: Vec<SocketAddr>) -> Running {
    start_with(records, upstreams, Vec::new()).await
}

async fn start_with(
    records: Records,
    upstreams: Vec<SocketAddr>,
    search_domains: Vec<String>,
) -> Running {
    let (sender, receiver) = watch::channel(Arc::new(records));
    let server = DnsServer::with_search_domains(receiver, upstreams, search_domains);
    server
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .expect("listen");
    let listening = server.listening();
    assert_eq!(listening.len(), 1, "{listening:?}");
    assert_ne!(listening[0].port(), 0);
    Running {
        server,
        addr: listening[0],
        records: sender,
    }
}

/// How a [`FakeUpstream`] answers.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// Knows [`EXTERNAL`], says NXDOMAIN to the rest.
    Answer,
    /// As `Answer`, but each UDP answer comes after one with a wrong id, which must be ignored.
    DecoyFirst,
    /// SERVFAIL to everything, as a resolver that cannot reach the internet.
    ServFail,
}

/// A stand-in for the host's resolver on 127.0.0.1, over UDP and TCP, counting what it was asked.
struct FakeUpstream {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl FakeUpstream {
    async fn start(behaviour: Behaviour) -> Self {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = TcpListener::bind(addr).await.unwrap();
        let queries = Arc::new(AtomicUsize::new(0));
        let udp_task = tokio::spawn({
            let queries = queries.clone();
            async move {
                let mut buf = vec![0; 65535];
                while let Ok((len, from)) = udp.recv_from(&mut buf).await {
                    queries.fetch_add(1, Ordering::SeqCst);
                    let Some(answer) = fake_answer(&buf[..len], behaviour) else {
                        continue;
                    };
                    if behaviour == Behaviour::DecoyFirst {
                        let mut decoy = answer.clone();
                        decoy[0] ^= 0xff;
                        let _ = udp.send_to(&decoy, from).await;
                    }
                    let _ = udp.send_to(&answer, from).await;
                }
            }
        });
        let tcp_task = tokio::spawn({
            let queries = queries.clone();
            async move {
                while let Ok((mut stream, _)) = tcp.accept().await {
                    queries.fetch_add(1, Ordering::SeqCst);
                    let Ok(len) = stream.read_u16().await else {
                        continue;
                    };
                    let mut buf = vec![0; usize::from(len)];
                    if stream.read_exact(&mut buf).await.is_err() {
                        continue;
                    }
                    let Some(answer) = fake_answer(&buf, behaviour) else {
                        continue;
                    };
                    let _ = stream.write_u16(answer.len() as u16).await;
                    let _ = stream.write_all(&answer).await;
                }
            }
        });
        Self {
            addr,
            queries,
            tasks: vec![udp_task, tcp_task],
        }
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

fn fake_answer(query: &[u8], behaviour: Behaviour) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    let mut answer = Message::response(query.metadata.id, OpCode::Query);
    answer.metadata.recursion_desired = query.metadata.recursion_desired;
    answer.metadata.recursion_available = true;
    let question = query.queries.first()?.clone();
    let known = question.name() == &Name::from_ascii(EXTERNAL).unwrap();
    if behaviour == Behaviour::ServFail {
        answer.metadata.response_code = ResponseCode::ServFail;
    } else if known && question.query_type() == RecordType::A {
        answer.add_answer(Record::from_rdata(
            question.name().clone(),
            60,
            RData::A(A(EXTERNAL_ADDR)),
        ));
    } else if !known {
        answer.metadata.response_code = ResponseCode::NXDomain;
    }
    answer.add_query(question);
    answer.to_vec().ok()
}

/// An address that refuses DNS: a UDP port nobody listens on (and no TCP listener either).
fn closed_port() -> SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

fn query_bytes(id: u16, name: &str, record_type: RecordType, edns: bool) -> Vec<u8> {
    let mut query = Message::query();
    query.metadata.id = id;
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
    if edns {
        let mut opt = Edns::new();
        opt.set_max_payload(1232);
        query.set_edns(opt);
    }
    query.to_vec().unwrap()
}

/// Sends raw bytes over UDP from `from` and waits for one answer.
async fn exchange_raw(
    from: Ipv4Addr,
    server: SocketAddr,
    packet: &[u8],
) -> std::io::Result<Vec<u8>> {
    let socket = UdpSocket::bind((from, 0)).await?;
    socket.connect(server).await?;
    socket.send(packet).await?;
    let mut buf = vec![0; 65535];
    let len = tokio::time::timeout(DEADLINE, socket.recv(&mut buf))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    buf.truncate(len);
    Ok(buf)
}

/// Asks `name`/`record_type` over UDP from `from`, checks the answer belongs to the query, returns it.
async fn ask(from: Ipv4Addr, server: SocketAddr, name: &str, record_type: RecordType) -> Message {
    let id: u16 = rand::random();
    let raw = exchange_raw(from, server, &query_bytes(id, name, record_type, false))
        .await
        .expect("an answer");
    let answer = Message::from_vec(&raw).expect("a well-formed answer");
    assert_answers(&answer, id, name, record_type);
    answer
}

/// Asks over TCP from `from`.
async fn ask_tcp(
    from: Ipv4Addr,
    server: SocketAddr,
    name: &str,
    record_type: RecordType,
) -> Message {
    let id: u16 = rand::random();
    let query = query_bytes(id, name, record_type, false);
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    let mut stream = socket.connect(server).await.expect("connect");
    let exchange = async {
        stream.write_u16(query.len() as u16).await?;
        stream.write_all(&query).await?;
        let len = stream.read_u16().await?;
        let mut buf = vec![0; usize::from(len)];
        stream.read_exact(&mut buf).await?;
        std::io::Result::Ok(buf)
    };
    let raw = tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("a TCP answer in time")
        .expect("a TCP answer");
    let answer = Message::from_vec(&raw).expect("a well-formed answer");
    assert_answers(&answer, id, name, record_type);
    answer
}

fn assert_answers(answer: &Message, id: u16, name: &str, record_type: RecordType) {
    assert_eq!(answer.metadata.id, id);
    assert_eq!(answer.metadata.message_type, MessageType::Response);
    assert!(answer.metadata.recursion_available, "RA not set");
    assert_eq!(answer.queries.len(), 1);
    assert_eq!(answer.queries[0].name(), &Name::from_ascii(name).unwrap());
    assert_eq!(answer.queries[0].query_type(), record_type);
}

fn addresses(answer: &Message) -> Vec<Ipv4Addr> {
    answer
        .answers
        .iter()
        .map(|record| match &record.data {
            RData::A(A(addr)) => *addr,
            other => panic!("not an A record: {other:?}"),
        })
        .collect()
}

fn address_set(answer: &Message) -> HashSet<Ipv4Addr> {
    addresses(answer).into_iter().collect()
}

/// Polls `condition` until it holds or the deadline passes.
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_container_gets_its_networks_names_and_not_the_others() {
    let upstream = FakeUpstream::start(Behaviour::Answer).await;
    let dns = start(fixture(), vec![upstream.addr]).await;

    let answer = ask(ON_A, dns.addr, "web.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(
        answer.metadata.authoritative,
        "our answers are authoritative"
    );
    assert_eq!(addresses(&answer), vec![v4(10, 1, 0, 100)]);
    assert!(answer.answers.iter().all(|record| record.ttl == 2));
    assert_eq!(upstream.queries(), 0);

    // `web` lives on network A only: the container on B is forwarded, and the upstream says no.
    let answer = ask(ON_B, dns.addr, "web.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    assert!(answer.answers.is_empty());
    assert_eq!(upstream.queries(), 1);
    let answer = ask(ON_A, dns.addr, "db.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(upstream.queries(), 2);

    // Task names resolve like service names.
    let answer = ask(ON_A, dns.addr, "web.1.abcdef.", RecordType::A).await;
    assert_eq!(addresses(&answer), vec![v4(10, 1, 0, 10)]);
}

#[tokio::test]
async fn tasks_names_answer_every_task_address_in_varying_order() {
    let dns = start(fixture(), vec![]).await;
    let expected: HashSet<Ipv4Addr> = [v4(10, 1, 0, 10), v4(10, 1, 0, 11), v4(10, 1, 0, 12)].into();
    let mut firsts = HashSet::new();
    // With three addresses in random order, 30 answers all starting alike has odds of 3^-29.
    for _ in 0..30 {
        let answer = ask(ON_A, dns.addr, "tasks.web.", RecordType::A).await;
        assert_eq!(answer.answers.len(), 3);
        assert_eq!(address_set(&answer), expected);
        firsts.insert(addresses(&answer)[0]);
    }
    assert!(firsts.len() > 1, "the order never changed: {firsts:?}");

    // A container on both networks gets the union, each address once.
    let answer = ask(ON_AB, dns.addr, "tasks.web.", RecordType::A).await;
    assert_eq!(answer.answers.len(), 4);
    assert_eq!(
        address_set(&answer),
        [
            v4(10, 1, 0, 10),
            v4(10, 1, 0, 11),
            v4(10, 1, 0, 12),
            v4(10, 2, 0, 13)
        ]
        .into()
    );
}

#[tokio::test]
async fn dnsrr_services_answer_several_addresses() {
    let dns = start(fixture(), vec![]).await;
    let answer = ask(ON_A, dns.addr, "api.", RecordType::A).await;
    assert_eq!(
        address_set(&answer),
        [v4(10, 1, 0, 20), v4(10, 1, 0, 21)].into()
    );
}

#[tokio::test]
async fn names_match_whatever_their_case() {
    let upstream = FakeUpstream::start(Behaviour::Answer).await;
    let dns = start(fixture(), vec![upstream.addr]).await;
    let answer = ask(ON_A, dns.addr, "TASKS.Web.", RecordType::A).await;
    assert_eq!(answer.answers.len(), 3);
    assert!(answer.metadata.authoritative);
    let answer = ask_tcp(ON_B, dns.addr, "dB.", RecordType::A).await;
    assert_eq!(addresses(&answer), vec![v4(10, 2, 0, 100)]);
    assert_eq!(upstream.queries(), 0);
}

#[tokio::test]
async fn other_types_of_a_known_name_get_an_empty_answer_not_forwarded() {
    let upstream = FakeUpstream::start(Behaviour::Answer).await;
    let dns = start(fixture(), vec![upstream.addr]).await;
    for record_type in [RecordType::AAAA, RecordType::MX, RecordType::TXT] {
        let answer = ask(ON_A, dns.addr, "web.", record_type).await;
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert!(answer.metadata.authoritative);
        assert!(
            answer.answers.is_empty(),
            "{record_type}: {:?}",
            answer.answers
        );
    }
    assert_eq!(upstream.queries(), 0);
    assert_eq!(dns.server.counters().answered, 3);
}

#[tokio::test]
async fn unknown_names_are_forwarded_and_the_answer_relayed() {
    let upstream = FakeUpstream::start(Behaviour::Answer).await;
    let dns = start(fixture(), vec![upstream.addr]).await;
    let answer = ask(ON_A, dns.addr, EXTERNAL, RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(!answer.metadata.authoritative, "not our name");
    assert_eq!(addresses(&answer), vec![EXTERNAL_ADDR]);
    assert_eq!(answer.answers[0].ttl, 60, "the upstream's TTL is kept");
    assert_eq!(upstream.queries(), 1);

    // PTR queries are never ours.
    let answer = ask(ON_A, dns.addr, "100.0.1.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(upstream.queries(), 2);

    assert_eq!(
        dns.server.counters(),
        DnsCounters {
            answered: 0,
            forwarded: 2,
            failed: 0
        }
    );
}

#[tokio::test]
async fn unknown_askers_are_only_forwarded() {
    let upstream = FakeUpstream::start(Behaviour::Answer).await;
    let dns = start(fixture(), vec![upstream.addr]).await;
    let answer = ask(STRANGER, dns.addr, "web.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    assert!(answer.answers.is_empty());
    let answer = ask(STRANGER, dns.addr, EXTERNAL, RecordType::A).await;
    assert_eq!(addresses(&answer), vec![EXTERNAL_ADDR]);
    assert_eq!(upstream.queries(), 2);
}

#[tokio::test]
async fn without_an_answering_upstream_the_answer_is_servfail() {
    let dns = start(fixture(), vec![closed_port(), closed_port()]).await;
    let answer = ask(ON_A, dns.addr, EXTERNAL, RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    let answer = ask_tcp(ON_A, dns.addr, EXTERNAL, RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    // Our own names still resolve.
    let answer = ask(ON_A, dns.addr, "web.", RecordType::A).await;
    assert_eq!(addresses(&answer), vec![v4(10, 1, 0, 100)]);
    assert_eq!(
        dns.server.counters(),
        DnsCounters {
            answered: 1,
            forwarded: 0,
            failed: 2
        }
    );

    let no_upstreams = start(fixture(), vec![]).await;
    let answer = ask(ON_A, no_upstreams.addr, EXTERNAL, RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn the_next_upstream_is_tried_and_stray_answers_ignored() {
    // The first upstream refuses; the second sends an answer with a wrong id before the right one.
    let upstream = FakeUpstream::start(Behaviour::DecoyFirst).await;
    let dns = start(fixture(), vec![closed_port(), upstream.addr]).await;
    let answer = ask(ON_A, dns.addr, EXTERNAL, RecordType::A).await;
    assert_eq!(addresses(&answer), vec![EXTERNAL_ADDR]);
}

#[tokio::test]
async fn an_upstream_servfail_means_ask_the_next() {
    let failing = FakeUpstream::start(Behaviour::ServFail).await;
    let answering = FakeUpstream::start(Behaviour::Answer).await;
    let dns = start(fixture(), vec![failing.addr, answering.addr]).await;
    let answer = ask(ON_A, dns.addr, EXTERNAL, RecordType::A).await;
    assert_eq!(addresses(&answer), vec![EXTERNAL_ADDR]);
    assert_eq!((failing.queries(), answering.queries()), (1, 1));

    let only_failing = start(fixture(), vec![failing.addr]).await;
    let answer = ask(ON_A, only_failing.addr, EXTERNAL, RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(only_failing.server.counters().failed, 1);
}

#[tokio::test]
async fn a_records_swap_applies_to_the_next_query() {
    let dns = start(fixture(), vec![]).await;
    let answer = ask(ON_A, dns.addr, "web.", RecordType::A).await;
    assert_eq!(addresses(&answer), vec![v4(10, 1, 0, 100)]);

    let mut records = fixture();
    records.names.get_mut(NET_A).unwrap().remove("web");
    records.add_name(NET_A, "web", [v4(10, 1, 0, 200)]);
    records.add_name(NET_A, "new", [v4(10, 1, 0, 201)]);
    dns.records.send(Arc::new(records)).unwrap();

    let answer = ask(ON_A, dns.addr, "web.", RecordType::A).await;
    assert_eq!(addresses(&answer), vec![v4(10, 1, 0, 200)]);
    let answer = ask(ON_A, dns.addr, "new.", RecordType::A).await;
    assert_eq!(addresses(&answer), vec![v4(10, 1, 0, 201)]);
}

#[tokio::test]
async fn tcp_queries_are_answered_and_forwarded_over_tcp() {
    let upstream = FakeUpstream::start(Behaviour::Answer).await;
    let dns = start(fixture(), vec![upstream.addr]).await;
    let answer = ask_tcp(ON_A, dns.addr, "tasks.web.", RecordType::A).await;
    assert_eq!(answer.answers.len(), 3);
    assert!(answer.metadata.authoritative);
    let answer = ask_tcp(ON_A, dns.addr, EXTERNAL, RecordType::A).await;
    assert_eq!(addresses(&answer), vec![EXTERNAL_ADDR]);
    assert_eq!(upstream.queries(), 1);
}

#[tokio::test]
async fn a_search_domain_is_ignored_for_unknown_names() {
    let upstream = FakeUpstream::start(Behaviour::Answer).await;
    let dns = start_with(fixture(), vec![upstream.addr], vec!["Corp.Example.".into()]).await;
    let answer = ask(ON_A, dns.addr, "tasks.web.corp.example.", RecordType::A).await;
    assert_eq!(answer.answers.len(), 3);
    assert_eq!(
        answer.answers[0].name,
        Name::from_ascii("tasks.web.corp.example.").unwrap()
    );
    let answer = ask(ON_A, dns.addr, "web.other.example.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(upstream.queries(), 1);
}

#[tokio::test]
async fn edns_queries_get_an_opt_record_back() {
    let dns = start(fixture(), vec![]).await;
    let raw = exchange_raw(ON_A, dns.addr, &query_bytes(7, "web.", RecordType::A, true))
        .await
        .unwrap();
    let answer = Message::from_vec(&raw).unwrap();
    assert_eq!(answer.metadata.id, 7);
    assert_eq!(addresses(&answer), vec![v4(10, 1, 0, 100)]);
    assert!(answer.edns.is_some(), "no OPT record in the answer");
}

#[tokio::test]
async fn malformed_packets_do_not_stop_the_server() {
    let dns = start(fixture(), vec![]).await;
    let socket = UdpSocket::bind((ON_A, 0)).await.unwrap();
    socket.connect(dns.addr).await.unwrap();
    // Too short for a header, random junk, a response instead of a query: all dropped or refused.
    socket.send(&[1, 2, 3]).await.unwrap();
    for _ in 0..20 {
        let junk: Vec<u8> = (0..64).map(|_| rand::random()).collect();
        socket.send(&junk).await.unwrap();
    }

    // A header announcing a question that is not there: FORMERR with the query's id.
    let header = [0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    let raw = exchange_raw(ON_A, dns.addr, &header).await.unwrap();
    assert_eq!(&raw[..2], &[0xab, 0xcd]);
    let answer = Message::from_vec(&raw).unwrap();
    assert_eq!(answer.metadata.response_code, ResponseCode::FormErr);

    // Two questions: FORMERR too.
    let mut two = Message::query();
    two.metadata.id = 42;
    two.add_query(Query::query(
        Name::from_ascii("web.").unwrap(),
        RecordType::A,
    ));
    two.add_query(Query::query(
        Name::from_ascii("db.").unwrap(),
        RecordType::A,
    ));
    let raw = exchange_raw(ON_A, dns.addr, &two.to_vec().unwrap())
        .await
        .unwrap();
    let answer = Message::from_vec(&raw).unwrap();
    assert_eq!(answer.metadata.id, 42);
    assert_eq!(answer.metadata.response_code, ResponseCode::FormErr);

    let answer = ask(ON_A, dns.addr, "web.", RecordType::A).await;
    assert_eq!(addresses(&answer), vec![v4(10, 1, 0, 100)]);
}

#[tokio::test]
async fn listening_twice_is_a_no_op() {
    let dns = start(fixture(), vec![]).await;
    dns.server.listen(dns.addr).await.unwrap();
    dns.server
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(dns.server.listening(), vec![dns.addr]);

    // Another address is another listener, answering the same records.
    dns.server
        .listen("127.0.0.6:0".parse().unwrap())
        .await
        .unwrap();
    let listening = dns.server.listening();
    assert_eq!(listening.len(), 2, "{listening:?}");
    let other = *listening.iter().find(|addr| **addr != dns.addr).unwrap();
    assert_eq!(other.ip(), IpAddr::from([127, 0, 0, 6]));
    let answer = ask(ON_A, other, "web.", RecordType::A).await;
    assert_eq!(addresses(&answer), vec![v4(10, 1, 0, 100)]);
}

#[tokio::test]
async fn stop_stops_answering() {
    let dns = start(fixture(), vec![]).await;
    ask(ON_A, dns.addr, "web.", RecordType::A).await;
    dns.server.stop("127.0.0.9:53".parse().unwrap());
    assert_eq!(
        dns.server.listening(),
        vec![dns.addr],
        "stopping another address is a no-op"
    );

    dns.server.stop(dns.addr);
    assert!(dns.server.listening().is_empty());
    // The sockets close shortly after: the port then refuses queries (ICMP port unreachable
    // reaches the connected client socket) and TCP connections.
    let packet = query_bytes(1, "web.", RecordType::A, false);
    eventually("the UDP socket to close", || async {
        matches!(
            exchange_raw(ON_A, dns.addr, &packet).await,
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused
        )
    })
    .await;
    eventually("the TCP listener to close", || async {
        tokio::net::TcpStream::connect(dns.addr).await.is_err()
    })
    .await;

    // And it can listen there again.
    dns.server.listen(dns.addr).await.unwrap();
    let answer = ask(ON_A, dns.addr, "web.", RecordType::A).await;
    assert_eq!(addresses(&answer), vec![v4(10, 1, 0, 100)]);
}

#[test]
fn the_server_and_its_listen_future_can_move_between_tasks() {
    // Compile-time: the reconciler keeps the server in an Arc and calls `listen` from spawned tasks.
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<DnsServer>();
    let (_sender, receiver) = watch::channel(Arc::new(Records::default()));
    let server = DnsServer::new(receiver, vec![]);
    let listen = server.listen("127.0.0.1:0".parse().unwrap());
    send(&listen);
}
