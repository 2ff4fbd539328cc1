// edgeforge agent: serve one tier of a deployment over gRPC (edgeforge/agent.h, docs/agents.md).
#include <ATen/Parallel.h>
#include <malloc.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "commands.h"
#include "edgeforge/agent.h"
#include "edgeforge/error.h"

namespace edgeforge::cli {

Action add_agent(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "agent",
      "Serve one tier of a deployment: a gRPC server that holds model parts sent by the\n"
      "coordinator (`bench --mode emulated|remote`, `study`), runs the parts a request places on\n"
      "its tier and forwards the rest to the next tier's agent (--next), as in the study's\n"
      "mobile -> edge -> cloud chain. Listens on loopback unless told otherwise; any other\n"
      "address needs --token-file. Prints its address on the first line of stdout; stops on\n"
      "Ctrl-C or SIGTERM.");
  struct Args {
    AgentOptions o;
    std::string token_file;
    double max_message_mb = 256;
    double max_model_mb = 1024;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--tier", args->o.tier, "the tier it serves (a topology's tier name)")->required();
  cmd->add_option("--listen", args->o.listen, "HOST:PORT to listen on (port 0: any free port)")
      ->capture_default_str();
  cmd->add_option("--threads", args->o.threads, "compute threads")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--next", args->o.next, "HOST:PORT of the next tier's agent (none: last tier)");
  cmd->add_option("--next-delay-ms", args->o.next_delay_ms,
                  "round-trip time added on the link to --next (half each way), where the kernel\n"
                  "cannot add it (no netem)")
      ->check(CLI::Range(0.0, 600000.0))
      ->capture_default_str();
  cmd->add_option("--token-file", args->token_file,
                  "file whose first line is the shared token every caller must send (also sent\n"
                  "to --next); required to listen on a non-loopback address");
  cmd->add_option("--tls-cert", args->o.tls_cert, "PEM certificate: serve TLS (with --tls-key)");
  cmd->add_option("--tls-key", args->o.tls_key, "PEM private key of --tls-cert");
  cmd->add_option("--next-tls-ca", args->o.next_tls_ca, "PEM root certificate: reach --next over TLS");
  cmd->add_option("--max-message-mb", args->max_message_mb, "larger requests are refused")
      ->check(CLI::Range(0.001, 2047.0))
      ->capture_default_str();
  cmd->add_option("--max-model-mb", args->max_model_mb,
                  "model parts held together (their ONNX bytes); a Load past it is refused")
      ->check(CLI::Range(0.001, 1048576.0))
      ->capture_default_str();
  cmd->add_option("--max-models", args->o.max_models, "model parts held at once; one more Load is refused")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--max-requests", args->o.max_requests,
                  "Load and Infer requests served at once; one more is refused (RESOURCE_EXHAUSTED).\n"
                  "Memory for requests stays below this times --max-message-mb")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  return [args]() {
    AgentOptions o = args->o;
    if (!args->token_file.empty()) o.token = read_token_file(args->token_file, "--token-file");
    o.max_message_bytes = static_cast<int64_t>(args->max_message_mb * (1 << 20));
    o.max_model_bytes = static_cast<int64_t>(args->max_model_mb * (1 << 20));
    // gRPC serves requests on a pool of threads; with glibc's default of 8 arenas per core each
    // keeps its own free memory. Two arenas keep an agent's memory close to what it uses (the
    // compute runs on one thread) and let the trimmer (agent_server.cpp) give the rest back.
    mallopt(M_ARENA_MAX, 2);
    // Ctrl-C and SIGTERM end the agent cleanly: blocked here, awaited by one thread.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    at::set_num_threads(o.threads);  // preprocessing too runs on the tier's threads
    AgentServer server(o);
    std::printf("agent tier %s listening on %s%s\n", o.tier.c_str(), server.address().c_str(),
                o.next.empty() ? "" : (" -> " + o.next).c_str());
    std::fflush(stdout);
    std::thread waiter([&server, stop]() {
      int sig = 0;
      sigwait(&stop, &sig);
      server.shutdown();
    });
    waiter.detach();
    server.wait();
    std::fprintf(stderr, "agent tier %s: stopped\n", o.tier.c_str());
    return 0;
  };
}

}  // namespace edgeforge::cli
