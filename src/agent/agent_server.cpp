// The tier agent: a gRPC server that holds model parts, runs the stages of a request that are
// on its tier and forwards the rest to the next tier (edgeforge/agent.h, docs/agents.md).
#include <ATen/Parallel.h>
#include <grpcpp/grpcpp.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <malloc.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "edgeforge/agent.grpc.pb.h"
#include "edgeforge/agent.h"
#include "edgeforge/build_info.h"
#include "edgeforge/error.h"
#include "edgeforge/lower.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/util.h"
#include "agent_common.h"
#include "agent_wire.h"

namespace edgeforge {
namespace {

namespace pb = edgeforge::agent;
using Clock = std::chrono::steady_clock;

// A model part the agent holds. A node-less model is a preprocessor: the whole model's inputs
// and metadata, used to turn a payload into those inputs.
struct Held {
  std::string onnx;
  Graph graph;
  std::unique_ptr<InferenceSession> session;  // null for a preprocessor
  std::unique_ptr<Preprocessor> preprocess;   // built on first use
  std::vector<std::string> input_names;       // non-constant inputs, in order
  std::vector<std::string> output_names;
  std::mutex mutex;                           // a session serves one request at a time
};

// An Error raised while serving: its gRPC status code and the one-line message.
struct Refusal {
  grpc::StatusCode code;
  std::string message;
};
[[noreturn]] void refuse(grpc::StatusCode code, std::string message) {
  throw Refusal{code, std::move(message)};
}

// One thread that does an agent's computing (preprocessing, parts, plans), whichever gRPC
// thread serves the request: ATen's OpenMP team belongs to the thread that starts it, so
// computing on gRPC's changing handler threads would keep starting cold teams.
class ComputeThread {
 public:
  explicit ComputeThread(int threads) : thread_([this, threads] {
    at::set_num_threads(threads);  // per thread: preprocessing too runs on the tier's threads
    loop();
  }) {}
  ~ComputeThread() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    ready_.notify_all();
    thread_.join();
  }
  // Runs `task` on the compute thread and waits; its exception is rethrown here.
  void run(const std::function<void()>& task) {
    std::packaged_task<void()> job(task);
    std::future<void> done = job.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back(std::move(job));
    }
    ready_.notify_one();
    done.get();
  }

 private:
  void loop() {
    for (;;) {
      std::packaged_task<void()> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::packaged_task<void()>> jobs_;
  bool stop_ = false;
  std::thread thread_;
};

// A Load or Infer holds one of the agent's max_requests slots while it is served; when all are
// taken the request is refused at once, so a flood cannot make the agent hold hundreds of
// requests' messages and tensors together.
class RequestSlot {
 public:
  RequestSlot(std::atomic<int>& busy, std::atomic<int64_t>& served, int limit, const std::string& tier)
      : busy_(busy), served_(served) {
    if (busy_.fetch_add(1) >= limit) {
      busy_.fetch_sub(1);
      refuse(grpc::StatusCode::RESOURCE_EXHAUSTED,
             "tier " + tier + ": already serving " + std::to_string(limit) +
                 " requests, its limit (agent --max-requests); retry later");
    }
  }
  ~RequestSlot() {
    served_.fetch_add(1);
    busy_.fetch_sub(1);
  }
  RequestSlot(const RequestSlot&) = delete;
  RequestSlot& operator=(const RequestSlot&) = delete;

 private:
  std::atomic<int>& busy_;
  std::atomic<int64_t>& served_;
};

// Gives memory freed by served requests back to the system. glibc keeps freed blocks in its
// per-thread arenas, and gRPC serves requests on a pool of threads, so after a burst of large
// requests an agent would otherwise keep its peak size for good (164 MB -> 944 MB after two
// floods of 500 requests, issue 22). Once a second, when requests were served since the last
// look and none is in flight, malloc_trim returns the free pages; never during a request, so it
// costs no request any time.
class Trimmer {
 public:
  Trimmer(const std::atomic<int>& busy, const std::atomic<int64_t>& served)
      : thread_([this, &busy, &served] {
          int64_t trimmed_at = 0;
          std::unique_lock<std::mutex> lock(mutex_);
          while (!stop_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; })) {
            const int64_t n = served.load();
            if (n != trimmed_at && busy.load() == 0) {
              malloc_trim(0);
              trimmed_at = n;
            }
          }
        }) {}
  ~Trimmer() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    stop_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable stop_;
  bool stopping_ = false;
  std::thread thread_;
};

class Service final : public pb::Agent::Service {
 public:
  explicit Service(AgentOptions o) : o_(std::move(o)), compute_(o_.threads), trimmer_(busy_, served_) {
    if (!o_.next.empty())
      next_ = std::make_unique<InferChannel>(agent_channel(o_.next, o_.next_tls_ca, o_.max_message_bytes));
  }

  grpc::Status Health(grpc::ServerContext* ctx, const pb::HealthRequest*, pb::HealthReply* reply) override {
    return guarded(ctx, [&] {
      reply->set_tier(o_.tier);
      reply->set_threads(o_.threads);
      reply->set_next(o_.next);
      reply->set_requests_in_flight(busy_.load());
      std::lock_guard<std::mutex> lock(models_mutex_);
      for (const auto& [hash, held] : models_) reply->add_models(hash);
    });
  }

  grpc::Status Version(grpc::ServerContext* ctx, const pb::VersionRequest*, pb::VersionReply* reply) override {
    return guarded(ctx, [&] {
      reply->set_version(version());
      reply->set_protocol(kAgentProtocol);
    });
  }

  grpc::Status Load(grpc::ServerContext* ctx, const pb::LoadRequest* req, pb::LoadReply* reply) override {
    return guarded(ctx, [&] {
      const RequestSlot slot(busy_, served_, o_.max_requests, o_.tier);
      const std::string& hash = req->sha256();
      if (hash.size() != 64 || hash.find_first_not_of("0123456789abcdef") != std::string::npos)
        refuse(grpc::StatusCode::INVALID_ARGUMENT, "load: sha256 '" + hash.substr(0, 80) +
                                                       "' is not 64 lowercase hex digits");
      if (sha256_hex(req->onnx()) != hash)
        refuse(grpc::StatusCode::INVALID_ARGUMENT,
               "load: the model's bytes do not have sha256 " + hash);
      {
        std::lock_guard<std::mutex> lock(models_mutex_);
        if (models_.count(hash)) {
          reply->set_already_held(true);
          return;
        }
        if (static_cast<int>(models_.size()) >= o_.max_models)
          refuse(grpc::StatusCode::RESOURCE_EXHAUSTED,
                 "load: tier " + o_.tier + " holds " + std::to_string(models_.size()) +
                     " models, its limit (agent --max-models)");
        if (held_bytes_ + static_cast<int64_t>(req->onnx().size()) > o_.max_model_bytes)
          refuse(grpc::StatusCode::RESOURCE_EXHAUSTED,
                 "load: tier " + o_.tier + " holds " + std::to_string(held_bytes_) +
                     " bytes of models; " + std::to_string(req->onnx().size()) +
                     " more is over its limit of " + std::to_string(o_.max_model_bytes));
      }
      const auto t0 = Clock::now();
      auto held = std::make_shared<Held>();
      held->onnx = req->onnx();
      try {
        held->graph = graph_from_onnx_bytes(held->onnx, "model " + hash.substr(0, 12));
        if (!held->graph.nodes().empty()) held->session = std::make_unique<InferenceSession>(held->graph);
      } catch (const Error& e) {
        refuse(grpc::StatusCode::INVALID_ARGUMENT, std::string("load: ") + e.what());
      }
      for (const ValueInfo& v : held->graph.inputs())
        if (!held->graph.has_initializer(v.name)) held->input_names.push_back(v.name);
      for (const ValueInfo& v : held->graph.outputs()) held->output_names.push_back(v.name);
      reply->set_prepare_ms(ms_since(t0));
      std::lock_guard<std::mutex> lock(models_mutex_);
      if (models_.emplace(hash, held).second) held_bytes_ += static_cast<int64_t>(held->onnx.size());
    });
  }

  grpc::Status Infer(grpc::ServerContext* ctx, const pb::InferRequest* req, pb::InferReply* reply) override {
    // The request is this call's own and nothing reads it after the handler, so its payload
    // and tensors are moved on (to preprocessing or the next tier), not copied: a megabyte
    // copied out of cache costs about 0.2 ms (docs/agents.md).
    return guarded(ctx, [&] {
      const RequestSlot slot(busy_, served_, o_.max_requests, o_.tier);
      infer(ctx, *const_cast<pb::InferRequest*>(req), *reply);
    });
  }

 private:
  // Runs `body` after checking the caller's token; a Refusal or an Error becomes a status, so a
  // bad request never takes the agent down.
  template <typename F>
  grpc::Status guarded(grpc::ServerContext* ctx, F body) {
    try {
      if (!o_.token.empty()) {
        const auto& md = ctx->client_metadata();
        const auto it = md.find(kTokenHeader);
        if (it == md.end() || !same_secret(std::string(it->second.data(), it->second.size()), o_.token))
          refuse(grpc::StatusCode::UNAUTHENTICATED, "tier " + o_.tier + ": missing or wrong token");
      }
      body();
      return grpc::Status::OK;
    } catch (const Refusal& r) {
      return grpc::Status(r.code, r.message);
    } catch (const Error& e) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "tier " + o_.tier + ": " + error_line(e));
    } catch (const std::exception& e) {  // a LibTorch error: its first line, not its backtrace
      return grpc::Status(grpc::StatusCode::INTERNAL, "tier " + o_.tier + ": " + error_line(e));
    }
  }

  std::shared_ptr<Held> find(const std::string& hash) {
    std::lock_guard<std::mutex> lock(models_mutex_);
    auto it = models_.find(hash);
    if (it == models_.end())
      refuse(grpc::StatusCode::NOT_FOUND, "tier " + o_.tier + ": unknown model " +
                                              hash.substr(0, 64) + " (load it first)");
    return it->second;
  }

  void infer(grpc::ServerContext* ctx, pb::InferRequest& req, pb::InferReply& reply) {
    if (req.stages_size() == 0) refuse(grpc::StatusCode::INVALID_ARGUMENT, "infer: the request has no stages");
    pb::TierReport* me = reply.add_tiers();
    me->set_tier(o_.tier);
    std::map<std::string, at::Tensor> values;
    std::vector<at::Tensor> last;
    int k = 0;
    const bool mine = req.stages(0).tier() == o_.tier;
    if (mine) {
      if (req.has_payload()) {
        const std::shared_ptr<Held> pre = find(req.preprocessor());
        std::lock_guard<std::mutex> lock(pre->mutex);
        if (!pre->preprocess) pre->preprocess = std::make_unique<Preprocessor>(pre->graph);
        Payload p;
        p.kind = req.payload().kind();
        p.bytes.swap(*req.mutable_payload()->mutable_bytes());
        p.height = req.payload().height();
        p.width = req.payload().width();
        std::vector<at::Tensor> inputs;
        compute_.run([&] {
          const auto t0 = Clock::now();
          inputs = (*pre->preprocess)(p);
          me->set_preprocess_ms(ms_since(t0));
        });
        for (size_t i = 0; i < inputs.size() && i < pre->input_names.size(); ++i)
          values[pre->input_names[i]] = inputs[i];
      } else if (req.input_case() == pb::InferRequest::kTensors) {
        const auto t0 = Clock::now();
        const std::vector<at::Tensor> ts = decode_tensors(req.tensors(), "infer: tensors");
        if (ts.size() != static_cast<size_t>(req.names_size()))
          refuse(grpc::StatusCode::INVALID_ARGUMENT,
                 "infer: " + std::to_string(ts.size()) + " tensors for " +
                     std::to_string(req.names_size()) + " names");
        for (size_t i = 0; i < ts.size(); ++i) values[req.names(static_cast<int>(i))] = ts[i];
        me->set_serialise_ms(ms_since(t0));
      } else {
        refuse(grpc::StatusCode::INVALID_ARGUMENT, "infer: the request carries no input");
      }
      for (; k < req.stages_size() && req.stages(k).tier() == o_.tier; ++k) {
        const pb::Stage& stage = req.stages(k);
        const std::shared_ptr<Held> m = find(stage.model());
        if (!m->session)
          refuse(grpc::StatusCode::INVALID_ARGUMENT,
                 "infer: model " + stage.model().substr(0, 12) + " has no nodes to run");
        std::vector<at::Tensor> ins;
        for (const std::string& name : stage.inputs()) {
          auto it = values.find(name);
          if (it == values.end())
            refuse(grpc::StatusCode::INVALID_ARGUMENT,
                   "infer: the stage on tier " + o_.tier + " reads '" + name.substr(0, 200) +
                       "', which the request does not carry");
          ins.push_back(it->second);
        }
        std::lock_guard<std::mutex> lock(m->mutex);
        compute_.run([&] {
          if (req.cold()) me->set_load_ms(me->load_ms() + prepare_again(*m));
          RunOptions ro;
          ro.threads = o_.threads;
          const auto t0 = Clock::now();
          last = m->session->run(ins, ro);
          me->set_compute_ms(me->compute_ms() + ms_since(t0));
          for (at::Tensor& t : last) t = t.clone();  // the session reuses its output buffers
        });
        for (size_t o = 0; o < last.size() && o < m->output_names.size(); ++o)
          values[m->output_names[o]] = last[o];
      }
    }
    if (k == req.stages_size()) {
      const auto t0 = Clock::now();
      reply.set_tensors(encode_tensors(last));
      me->set_serialise_ms(me->serialise_ms() + ms_since(t0));
      return;
    }
    // Stages on later tiers: forward.
    if (!next_)
      refuse(grpc::StatusCode::FAILED_PRECONDITION,
             "tier " + o_.tier + " is the last tier but the request has a stage on tier " +
                 req.stages(k).tier().substr(0, 100));
    pb::InferRequest fwd;
    for (int s = k; s < req.stages_size(); ++s) *fwd.add_stages() = req.stages(s);
    fwd.set_preprocessor(req.preprocessor());
    fwd.set_cold(req.cold());
    if (!mine) {  // nothing ran here: pass the input on as it came
      if (req.has_payload()) fwd.mutable_payload()->Swap(req.mutable_payload());
      else fwd.mutable_tensors()->swap(*req.mutable_tensors());
      fwd.mutable_names()->Swap(req.mutable_names());
    } else {
      const auto t0 = Clock::now();
      std::vector<at::Tensor> out;
      for (const std::string& name : req.stages(k).inputs()) {
        auto it = values.find(name);
        if (it == values.end())
          refuse(grpc::StatusCode::INVALID_ARGUMENT,
                 "infer: the stage on tier " + req.stages(k).tier().substr(0, 100) + " reads '" +
                     name.substr(0, 200) + "', which tier " + o_.tier + " does not have");
        out.push_back(it->second);
        fwd.add_names(name);
      }
      fwd.set_tensors(encode_tensors(out));
      me->set_serialise_ms(me->serialise_ms() + ms_since(t0));
    }
    const auto t0 = Clock::now();
    delay(o_.next_delay_ms / 2);
    grpc::ClientContext cctx;
    const auto limit = std::chrono::system_clock::now() +
                       std::chrono::microseconds(static_cast<int64_t>(o_.next_timeout_ms * 1000));
    cctx.set_deadline(std::min(limit, ctx->deadline()));
    if (!o_.token.empty()) cctx.AddMetadata(kTokenHeader, o_.token);
    pb::InferReply down;
    int64_t sent = 0;
    const grpc::Status status = next_->call(&cctx, fwd, &down, &sent);
    me->set_forwarded_bytes(sent);
    if (!status.ok())
      refuse(status.error_code(), "tier " + o_.tier + " forwarding to " + o_.next + ": " +
                                      status.error_message());
    delay(o_.next_delay_ms / 2);
    me->set_delay_ms(o_.next_delay_ms);
    me->set_forward_ms(ms_since(t0));
    reply.set_tensors(down.tensors());
    for (const pb::TierReport& t : down.tiers()) *reply.add_tiers() = t;
  }

  // A cold start: the part parsed and its plan built again, oneDNN's primitive cache off.
  static double prepare_again(Held& m) {
    const auto t0 = Clock::now();
    const int capacity = dnnl::get_primitive_cache_capacity();
    dnnl::set_primitive_cache_capacity(0);
    try {
      Graph g = graph_from_onnx_bytes(m.onnx, m.graph.name());
      m.session = std::make_unique<InferenceSession>(g);
    } catch (...) {
      dnnl::set_primitive_cache_capacity(capacity);
      throw;
    }
    dnnl::set_primitive_cache_capacity(capacity);
    return ms_since(t0);
  }

  static void delay(double ms) {
    if (ms > 0) std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(ms * 1000)));
  }

  AgentOptions o_;
  ComputeThread compute_;
  std::unique_ptr<InferChannel> next_;  // the next tier's agent, if any
  std::mutex models_mutex_;
  std::map<std::string, std::shared_ptr<Held>> models_;
  int64_t held_bytes_ = 0;
  std::atomic<int> busy_{0};          // Load and Infer requests being served
  std::atomic<int64_t> served_{0};    // Load and Infer requests served so far
  Trimmer trimmer_;                   // last: stopped before the counters it reads go
};

}  // namespace

struct AgentServer::Impl {
  std::unique_ptr<Service> service;
  std::unique_ptr<grpc::Server> server;
  std::string address;
};

AgentServer::AgentServer(const AgentOptions& options) : impl_(std::make_unique<Impl>()) {
  EF_CHECK(!options.tier.empty(), "agent: --tier is required");
  EF_CHECK(options.threads >= 1, "agent: --threads ", options.threads, " must be at least 1");
  EF_CHECK(options.next_delay_ms >= 0, "agent: the link delay ", options.next_delay_ms, " ms must be >= 0");
  EF_CHECK(options.max_message_bytes > 0, "agent: the message limit must be > 0");
  EF_CHECK(options.max_models >= 1 && options.max_models <= 100000, "agent: --max-models ",
           options.max_models, " must be in 1..100000");
  EF_CHECK(options.max_requests >= 1 && options.max_requests <= 100000, "agent: --max-requests ",
           options.max_requests, " must be in 1..100000");
  EF_CHECK(is_loopback_address(options.listen) || !options.token.empty(), "agent: ",
           options.listen, " is not a loopback address; give a token (--token-file) to listen on it");
  EF_CHECK(options.tls_cert.empty() == options.tls_key.empty(),
           "agent: TLS needs both a certificate and a key file");
  const std::size_t colon = options.listen.rfind(':');
  EF_CHECK(colon != std::string::npos && colon + 1 < options.listen.size(), "agent: listen address '",
           options.listen, "' is not HOST:PORT");
  impl_->service = std::make_unique<Service>(options);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen, server_credentials(options.tls_cert, options.tls_key), &port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<int64_t>(options.max_message_bytes, INT32_MAX)));
  builder.SetMaxSendMessageSize(static_cast<int>(std::min<int64_t>(options.max_message_bytes, INT32_MAX)));
  tune_server(builder);
  builder.RegisterService(impl_->service.get());
  impl_->server = builder.BuildAndStart();
  EF_CHECK(impl_->server != nullptr && port > 0, "agent: cannot listen on ", options.listen,
           " (in use, or not an address of this machine)");
  impl_->address = options.listen.substr(0, colon) + ":" + std::to_string(port);
}

AgentServer::~AgentServer() { shutdown(); }

std::string AgentServer::address() const { return impl_->address; }

void AgentServer::wait() {
  if (impl_->server) impl_->server->Wait();
}

void AgentServer::shutdown() {
  if (impl_->server) impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

}  // namespace edgeforge
