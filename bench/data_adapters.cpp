// Benchmark: the user data-set adapters against the built-in readers, on the same samples.
// Writes the Fashion-MNIST test split as an image folder (one 8-bit grey PNG per image, class
// folders "0_T-shirt_top" ... "9_Ankle_boot" so they sort in label order) and the spam test
// split as JSONL (text, label "ham"/"spam"), then evaluates each zoo teacher both ways and
// prints the accuracy through each and the difference (also in the report's context). Then
// Google Benchmark times, on one thread, the image folder's decode + preprocessing per image
// and the text kind's tokenisation per sample beside the model's own inference per sample
// (batch 1), the cases' repetitions randomly interleaved in one run, and prints the ratio
// preprocess / inference per model.
//
//   build/data_adapters --zoo-dir out/zoo [--out-dir out/adapters] [--models resnet,bert]
//                       [--limit N] [Google Benchmark flags: --json out.json ...]
// Cases: per_sample/preprocess/<model> and per_sample/inference/<model>; counter samples/s.
// The zoo models come from `edgeforge zoo --train --out-dir out/zoo`.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <png.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "bench_util.h"
#include "edgeforge/data.h"
#include "edgeforge/dataset.h"
#include "edgeforge/deploy.h"
#include "edgeforge/error.h"
#include "edgeforge/lower.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/runtime.h"
#include "edgeforge/train.h"

using namespace edgeforge;
namespace fs = std::filesystem;

namespace {

void write_grey_png(const std::string& path, const uint8_t* pixels, int h, int w) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = static_cast<png_uint_32>(w);
  img.height = static_cast<png_uint_32>(h);
  img.format = PNG_FORMAT_GRAY;
  EF_CHECK(png_image_write_to_file(&img, path.c_str(), 0, pixels, 0, nullptr) != 0, "cannot write ",
           path, ": ", img.message);
}

std::string class_folder(int label, const std::string& name) {
  std::string s = std::to_string(label) + "_";
  for (char c : name) s += (c == '/' || c == ' ') ? '_' : c;
  return s;
}

// Fashion-MNIST's test split as an image folder, and a spec reading it exactly as the built-in
// reader normalises (grey, 28x28, no resize, the training statistics).
std::string export_fashion(const std::string& dir, int64_t limit) {
  FashionMnistOptions fo;
  fo.limit = limit;
  const ImageSet set = load_fashion_mnist("test", fo);
  const auto& names = fashion_mnist_class_names();
  for (int c = 0; c < 10; ++c) fs::create_directories(dir + "/test/" + class_folder(c, names[c]));
  const at::Tensor images = set.images.contiguous();
  for (int64_t i = 0; i < images.size(0); ++i) {
    const int label = static_cast<int>(set.labels[i].item<int64_t>());
    char file[32];
    std::snprintf(file, sizeof file, "%05lld.png", static_cast<long long>(i));
    write_grey_png(dir + "/test/" + class_folder(label, names[label]) + "/" + file,
                   images[i].data_ptr<uint8_t>(), 28, 28);
  }
  const std::string spec = dir + "/fashion.toml";
  std::ofstream(spec) << "kind = \"imagefolder\"\ntest = \"test\"\nchannels = \"grey\"\n"
                      << "resize = 28\ncrop = 28\nmean = " << kFashionMnistMean
                      << "\nstd = " << kFashionMnistStd << "\n";
  return spec;
}

std::string export_spam(const std::string& dir, int64_t limit) {
  SpamOptions so;
  so.limit = limit;
  fs::create_directories(dir);
  std::ofstream out(dir + "/test.jsonl");
  for (const Mail& m : load_spam("test", so))
    out << nlohmann::json{{"text", m.text}, {"label", m.label ? "spam" : "ham"}}.dump() << "\n";
  const std::string spec = dir + "/spam.toml";
  std::ofstream(spec) << "kind = \"text\"\ntest = \"test.jsonl\"\nclasses = [\"ham\", \"spam\"]\n";
  return spec;
}

std::string zoo_dir = "out/zoo", out_dir = "out/adapters";
std::vector<std::string> models = {"resnet", "resnext", "bert", "roberta"};
int64_t limit = 0;

// A model read through its adapter: 50 test payloads and the session, alive until the run ends.
struct Case {
  Graph bound;
  std::unique_ptr<Dataset> data;
  std::vector<Payload> payloads;
  std::unique_ptr<InferenceSession> session;
  std::vector<at::Tensor> one;  // the first payload, preprocessed
  RunOptions run;
};
std::vector<std::unique_ptr<Case>> cases;

void register_cases() {
  at::set_num_threads(1);
  benchmark::AddCustomContext("threads", "1");
  const std::string fashion_spec = export_fashion(out_dir + "/fashion-mnist", limit);
  const std::string spam_spec = export_spam(out_dir + "/spam", limit);
  std::FILE* out = bench::notes();
  std::fprintf(out, "exported to %s\n", out_dir.c_str());
  std::fprintf(out, "%-10s %-22s %10s %10s %12s\n", "model", "metric", "built-in", "adapter", "difference");
  for (const std::string& name : models) {
    const std::string path = zoo_dir + "/" + name + ".onnx";
    const Graph model = load_onnx(path);
    const bool text = open_dataset(model)->modality() == "text";
    EvalOptions eo;
    eo.limit = limit;
    eo.threads = 1;
    const EvalResult builtin = evaluate(model, eo);
    eo.dataset = text ? spam_spec : fashion_spec;
    const EvalResult adapter = evaluate(model, eo);
    char line[160];
    std::snprintf(line, sizeof line, "%s built-in %.4f, adapter %.4f, difference %+.6f (%lld and %lld samples)",
                  metric_label(builtin.metric).c_str(), builtin.value, adapter.value,
                  adapter.value - builtin.value, static_cast<long long>(builtin.samples),
                  static_cast<long long>(adapter.samples));
    benchmark::AddCustomContext("accuracy " + name, line);
    std::fprintf(out, "%-10s %-22s %10.4f %10.4f %+12.6f\n", name.c_str(), metric_label(builtin.metric).c_str(),
                 builtin.value, adapter.value, adapter.value - builtin.value);
    // Per-sample cost of reading one input through the adapter, beside the model's compute.
    auto c = std::make_unique<Case>();
    c->bound = model;
    attach_data_spec(c->bound, parse_data_spec(eo.dataset), path);
    c->data = open_dataset(c->bound);
    c->payloads = c->data->payloads("test", 50);
    c->session = std::make_unique<InferenceSession>(c->bound);
    c->run.threads = 1;
    c->one = c->data->preprocess(c->payloads[0]);
    Case* p = c.get();
    cases.push_back(std::move(c));
    benchmark::RegisterBenchmark(("per_sample/preprocess/" + name).c_str(), [p](benchmark::State& state) {
      size_t k = 0;
      for (int i = 0; i < 5; ++i) p->data->preprocess(p->payloads[k++ % p->payloads.size()]);
      for (auto _ : state) benchmark::DoNotOptimize(p->data->preprocess(p->payloads[k++ % p->payloads.size()]));
      state.counters["samples"] = benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate);
    })->UseRealTime()->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("per_sample/inference/" + name).c_str(), [p](benchmark::State& state) {
      for (int i = 0; i < 5; ++i) p->session->run(p->one, p->run);
      for (auto _ : state) benchmark::DoNotOptimize(p->session->run(p->one, p->run));
      state.counters["samples"] = benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate);
    })->UseRealTime()->Unit(benchmark::kMicrosecond);
  }
  std::fprintf(out, "per sample below, 1 thread, batch 1: preprocess (images: decode + preprocessing; "
                    "texts: tokenisation) beside inference\n");
}

}  // namespace

int main(int argc, char** argv) {
  bench::Suite suite;
  suite.name = "data_adapters";
  suite.usage = "data_adapters options: [--zoo-dir DIR] [--out-dir DIR] [--models a,b] [--limit N]";
  suite.parse_options = [](const std::vector<std::string>& args) {
    return bench::each_option(args, [](const std::string& name, const std::string& value) {
      if (name == "--zoo-dir") zoo_dir = value;
      else if (name == "--out-dir") out_dir = value;
      else if (name == "--models") models = bench::split_list(value);
      else if (name == "--limit") limit = std::stoll(value);
      else return false;
      return true;
    });
  };
  suite.comparisons = {{"preprocess", "inference"}};
  suite.setup = register_cases;
  const int status = bench::run_benchmarks(argc, argv, suite);
  cases.clear();
  return status;
}
