// SPDX-License-Identifier: MIT
//
// Reference NodeRegistry server for the Heartbeat benchmark, written the way the
// official gRPC C++ library is fastest when used idiomatically: the async
// completion-queue API, one ServerCompletionQueue and one polling thread per core,
// every thread pre-posting a batch of Register and Heartbeat calls.  Nodes live in
// one unordered_map keyed "pool/id" under one std::mutex.  Nothing is durable:
// this server is the Heartbeat baseline only (the Register baseline is etcd).
//
// Every finished call is counted by gRPC status in atomics; the counts go to stderr
// as "ok=N err=M ..." on SIGUSR1 and at exit (SIGINT/SIGTERM).
//
//   ref_server [--listen 127.0.0.1:PORT] [-t THREADS] [--preload N]
//              [--prepost N] [--ready-file FILE]

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <pthread.h>

#include "galaxy/pool/v1/pool.grpc.pb.h"

namespace pb = galaxy::pool::v1;

namespace {

constexpr uint32_t kHeartbeatIntervalMs = 10000;
constexpr uint32_t kTtlMs = 3 * kHeartbeatIntervalMs;
const char kPreloadPool[] = "mainnet";
const char kPreloadToken[] = "bench-token";

// ------------------------------------------------------------------ counters

constexpr int kCodes = 17;  // grpc::StatusCode 0..16

struct Counters {
    std::atomic<uint64_t> by_code[kCodes];
    std::atomic<uint64_t> heartbeat_ok{0};
    std::atomic<uint64_t> register_ok{0};
};

Counters g_counts;

// Set before the server shuts down: calls that complete then post no new requests.
std::atomic<bool> g_stopping{false};

void
count(grpc::StatusCode code, std::atomic<uint64_t> *ok_counter)
{
    int c = static_cast<int>(code);
    if (c < 0 || c >= kCodes)
        c = grpc::StatusCode::UNKNOWN;
    g_counts.by_code[c].fetch_add(1, std::memory_order_relaxed);
    if (c == 0)
        ok_counter->fetch_add(1, std::memory_order_relaxed);
}

void
print_counts(const char *why)
{
    uint64_t ok = g_counts.by_code[0].load();
    uint64_t err = 0;
    std::string detail;
    for (int c = 1; c < kCodes; c++) {
        uint64_t n = g_counts.by_code[c].load();
        err += n;
        if (n)
            detail += " code" + std::to_string(c) + "=" + std::to_string(n);
    }
    std::fprintf(stderr, "ok=%llu err=%llu heartbeat_ok=%llu register_ok=%llu%s (%s)\n",
                 (unsigned long long)ok, (unsigned long long)err,
                 (unsigned long long)g_counts.heartbeat_ok.load(),
                 (unsigned long long)g_counts.register_ok.load(), detail.c_str(), why);
    std::fflush(stderr);
}

// ------------------------------------------------------------------ registry

struct NodeEntry {
    pb::Node node;
    std::string lease_token;
};

class Registry {
  public:
    void
    reserve(size_t n)
    {
        std::lock_guard<std::mutex> lock(mu_);
        nodes_.reserve(n);
    }

    grpc::Status register_node(const pb::RegisterRequest &req, pb::RegisterResponse *resp);
    grpc::Status heartbeat(const pb::HeartbeatRequest &req, pb::HeartbeatResponse *resp);
    void preload(size_t n);

  private:
    std::mutex mu_;
    std::unordered_map<std::string, NodeEntry> nodes_;
    uint64_t revision_ = 0;
};

int64_t
now_unix_ms()
{
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string
random_token()
{
    // 128 bits from the kernel's generator (libstdc++'s random_device reads getrandom).
    thread_local std::random_device rd;
    static const char hex[] = "0123456789abcdef";
    std::string tok;
    tok.reserve(32);
    for (int i = 0; i < 4; i++) {
        uint32_t v = rd();
        for (int j = 0; j < 8; j++) {
            tok.push_back(hex[v & 15]);
            v >>= 4;
        }
    }
    return tok;
}

std::string
node_key(const std::string &pool, const std::string &id)
{
    std::string key;
    key.reserve(pool.size() + 1 + id.size());
    key.append(pool).push_back('/');
    key.append(id);
    return key;
}

grpc::Status
Registry::register_node(const pb::RegisterRequest &req, pb::RegisterResponse *resp)
{
    const pb::Node &in = req.node();
    if (in.id().empty())
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "node.id is required");
    if (in.pool().empty())
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "node.pool is required");
    if (in.specializations_size() == 0)
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "node.specializations needs at least one");

    std::string key = node_key(in.pool(), in.id());
    int64_t now = now_unix_ms();
    std::lock_guard<std::mutex> lock(mu_);
    auto it = nodes_.find(key);
    if (it != nodes_.end() && it->second.lease_token != req.lease_token())
        return grpc::Status(grpc::StatusCode::ALREADY_EXISTS, "node is held by another lease");
    NodeEntry &e = nodes_[key];
    int64_t registered = it != nodes_.end() ? e.node.registered_unix_ms() : now;
    e.node = in;
    e.node.set_state(pb::NODE_STATE_HEALTHY);
    e.node.set_registered_unix_ms(registered);
    e.node.set_last_heartbeat_unix_ms(now);
    e.node.set_running_jobs(0);
    e.node.set_owner("");
    e.node.set_flap_count(0);
    e.node.set_revision(++revision_);
    if (it == nodes_.end())
        e.lease_token = random_token();
    *resp->mutable_node() = e.node;
    resp->set_lease_token(e.lease_token);
    resp->set_heartbeat_interval_ms(kHeartbeatIntervalMs);
    resp->set_ttl_ms(kTtlMs);
    return grpc::Status::OK;
}

grpc::Status
Registry::heartbeat(const pb::HeartbeatRequest &req, pb::HeartbeatResponse *resp)
{
    std::string key = node_key(req.pool(), req.node_id());
    int64_t now = now_unix_ms();
    std::lock_guard<std::mutex> lock(mu_);
    auto it = nodes_.find(key);
    if (it == nodes_.end())
        return grpc::Status(grpc::StatusCode::NOT_FOUND, "node not found");
    NodeEntry &e = it->second;
    if (e.lease_token != req.lease_token())
        return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "wrong lease token");
    e.node.set_load(req.load());
    e.node.set_running_jobs(req.running_jobs());
    e.node.set_last_heartbeat_unix_ms(now);
    e.node.set_state(pb::NODE_STATE_HEALTHY);
    resp->set_state(pb::NODE_STATE_HEALTHY);
    resp->set_heartbeat_interval_ms(kHeartbeatIntervalMs);
    resp->set_revision(e.node.revision());
    return grpc::Status::OK;
}

void
Registry::preload(size_t n)
{
    int64_t now = now_unix_ms();
    std::lock_guard<std::mutex> lock(mu_);
    nodes_.reserve(nodes_.size() + n);
    for (size_t i = 0; i < n; i++) {
        std::string id = "n" + std::to_string(i);
        NodeEntry &e = nodes_[node_key(kPreloadPool, id)];
        e.node.set_id(id);
        e.node.set_pool(kPreloadPool);
        e.node.add_specializations("bench");
        e.node.set_address("127.0.0.1:1");
        e.node.set_state(pb::NODE_STATE_HEALTHY);
        e.node.set_registered_unix_ms(now);
        e.node.set_last_heartbeat_unix_ms(now);
        e.node.set_revision(++revision_);
        e.lease_token = kPreloadToken;
    }
}

Registry g_registry;

// ------------------------------------------------------------------ async calls

class Call {
  public:
    virtual ~Call() = default;
    // ok is the completion queue's verdict on the last operation started.
    virtual void proceed(bool ok) = 0;
};

// One unary call of one method, from request posting to Finish: the classic
// CallData state machine of the gRPC C++ async examples.
template <class Req, class Resp, class Handler>
class UnaryCall final : public Call {
  public:
    using RequestFn = void (pb::NodeRegistry::AsyncService::*)(
        grpc::ServerContext *, Req *, grpc::ServerAsyncResponseWriter<Resp> *,
        grpc::CompletionQueue *, grpc::ServerCompletionQueue *, void *);

    UnaryCall(pb::NodeRegistry::AsyncService *svc, grpc::ServerCompletionQueue *cq,
              RequestFn request, Handler handler, std::atomic<uint64_t> *ok_counter)
        : svc_(svc), cq_(cq), request_(request), handler_(handler), ok_counter_(ok_counter),
          writer_(&ctx_)
    {
        (svc_->*request_)(&ctx_, &req_, &writer_, cq_, cq_, this);
    }

    void
    proceed(bool ok) override
    {
        if (state_ == kFinishing || !ok) {
            // Finish done, or the server is shutting down and the posted request died.
            delete this;
            return;
        }
        // A call arrived: post a fresh one for the next call before serving this one.
        if (!g_stopping.load(std::memory_order_relaxed))
            new UnaryCall(svc_, cq_, request_, handler_, ok_counter_);
        grpc::Status st = handler_(req_, &resp_);
        count(st.error_code(), ok_counter_);
        state_ = kFinishing;
        if (st.ok())
            writer_.Finish(resp_, st, this);
        else
            writer_.FinishWithError(st, this);
    }

  private:
    enum State { kWaiting, kFinishing };

    pb::NodeRegistry::AsyncService *svc_;
    grpc::ServerCompletionQueue *cq_;
    RequestFn request_;
    Handler handler_;
    std::atomic<uint64_t> *ok_counter_;
    grpc::ServerContext ctx_;
    Req req_;
    Resp resp_;
    grpc::ServerAsyncResponseWriter<Resp> writer_;
    State state_ = kWaiting;
};

using RegisterFn = grpc::Status (*)(const pb::RegisterRequest &, pb::RegisterResponse *);
using HeartbeatFn = grpc::Status (*)(const pb::HeartbeatRequest &, pb::HeartbeatResponse *);

grpc::Status
do_register(const pb::RegisterRequest &req, pb::RegisterResponse *resp)
{
    return g_registry.register_node(req, resp);
}

grpc::Status
do_heartbeat(const pb::HeartbeatRequest &req, pb::HeartbeatResponse *resp)
{
    return g_registry.heartbeat(req, resp);
}

void
post_calls(pb::NodeRegistry::AsyncService *svc, grpc::ServerCompletionQueue *cq, int n)
{
    for (int i = 0; i < n; i++) {
        new UnaryCall<pb::RegisterRequest, pb::RegisterResponse, RegisterFn>(
            svc, cq, &pb::NodeRegistry::AsyncService::RequestRegister, do_register,
            &g_counts.register_ok);
        new UnaryCall<pb::HeartbeatRequest, pb::HeartbeatResponse, HeartbeatFn>(
            svc, cq, &pb::NodeRegistry::AsyncService::RequestHeartbeat, do_heartbeat,
            &g_counts.heartbeat_ok);
    }
}

void
serve_cq(grpc::ServerCompletionQueue *cq)
{
    void *tag;
    bool ok;
    while (cq->Next(&tag, &ok))
        static_cast<Call *>(tag)->proceed(ok);
}

// ------------------------------------------------------------------ main

struct Options {
    std::string listen = "127.0.0.1:50151";
    int threads = 0;
    long preload = 0;
    int prepost = 64;
    std::string ready_file;
};

[[noreturn]] void
usage(const char *argv0)
{
    std::fprintf(stderr,
                 "usage: %s [--listen HOST:PORT] [-t THREADS] [--preload N] [--prepost N]"
                 " [--ready-file FILE]\n"
                 "  --listen      address to serve h2c on (default 127.0.0.1:50151; port 0 ="
                 " any)\n"
                 "  -t THREADS    completion queues, one polling thread each (default: cores)\n"
                 "  --preload N   register n0..n{N-1} in pool mainnet, lease token"
                 " \"bench-token\"\n"
                 "  --prepost N   calls of each method pre-posted per queue (default 64)\n"
                 "  --ready-file  written as \"h2c=HOST:PORT\" once serving\n"
                 "Counts go to stderr as \"ok=N err=M ...\" on SIGUSR1 and at exit.\n",
                 argv0);
    std::exit(2);
}

long
parse_num(const char *argv0, const char *s, long lo, long hi)
{
    char *end = nullptr;
    errno = 0;
    long v = std::strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        usage(argv0);
    return v;
}

Options
parse_args(int argc, char **argv)
{
    Options o;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        bool has_val = i + 1 < argc;
        if ((a == "--listen" || a == "-l") && has_val)
            o.listen = argv[++i];
        else if ((a == "-t" || a == "--threads") && has_val)
            o.threads = (int)parse_num(argv[0], argv[++i], 1, 1024);
        else if (a == "--preload" && has_val)
            o.preload = parse_num(argv[0], argv[++i], 0, 100000000);
        else if (a == "--prepost" && has_val)
            o.prepost = (int)parse_num(argv[0], argv[++i], 1, 100000);
        else if (a == "--ready-file" && has_val)
            o.ready_file = argv[++i];
        else
            usage(argv[0]);
    }
    if (o.threads == 0) {
        unsigned hc = std::thread::hardware_concurrency();
        o.threads = hc ? (int)hc : 1;
    }
    return o;
}

}  // namespace

int
main(int argc, char **argv)
{
    Options opt = parse_args(argc, argv);

    // Signals go to the main thread only, which waits for them in sigwait: every
    // thread gRPC starts inherits this mask.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

    for (auto &c : g_counts.by_code)
        c.store(0);
    if (opt.preload > 0) {
        auto t0 = std::chrono::steady_clock::now();
        g_registry.preload((size_t)opt.preload);
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - t0)
                      .count();
        std::fprintf(stderr, "preloaded %ld nodes in %lld ms\n", opt.preload, (long long)ms);
    }

    pb::NodeRegistry::AsyncService service;
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(opt.listen, grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs;
    for (int i = 0; i < opt.threads; i++)
        cqs.push_back(builder.AddCompletionQueue(true));
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (!server || port == 0) {
        std::fprintf(stderr, "ref_server: cannot listen on %s\n", opt.listen.c_str());
        return 1;
    }

    std::vector<std::thread> threads;
    for (auto &cq : cqs) {
        post_calls(&service, cq.get(), opt.prepost);
        threads.emplace_back(serve_cq, cq.get());
    }

    std::string host = opt.listen.substr(0, opt.listen.rfind(':'));
    std::string addr = host + ":" + std::to_string(port);
    std::fprintf(stderr, "ref_server: serving h2c on %s with %d queues/threads\n", addr.c_str(),
                 opt.threads);
    if (!opt.ready_file.empty()) {
        std::string tmp = opt.ready_file + ".tmp";
        {
            std::ofstream f(tmp);
            f << "h2c=" << addr << "\n";
        }
        std::rename(tmp.c_str(), opt.ready_file.c_str());
    }

    int sig = 0;
    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGUSR1) {
            print_counts("SIGUSR1");
            continue;
        }
        break;
    }

    g_stopping.store(true);
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    for (auto &cq : cqs)
        cq->Shutdown();
    for (auto &t : threads)
        t.join();
    print_counts(sig == SIGINT ? "SIGINT" : "SIGTERM");
    return 0;
}
