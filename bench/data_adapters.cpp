// Benchmark: the user data-set adapters against the built-in readers, on the same samples.
// Writes the Fashion-MNIST test split as an image folder (one 8-bit grey PNG per image, class
// folders "0_T-shirt_top" ... "9_Ankle_boot" so they sort in label order) and the spam test
// split as JSONL (text, label "ham"/"spam"), then evaluates each zoo teacher both ways and
// prints the accuracy through each and the difference. It also times, on one thread, the image
// folder's decode + preprocessing per image and the text kind's tokenisation per sample, each
// beside the model's own inference per sample (batch 1).
//
//   build/data_adapters --zoo-dir out/zoo [--out-dir out/adapters] [--models resnet,bert]
//                       [--limit N] [--json out.json]
// The zoo models come from `edgeforge zoo --train --out-dir out/zoo`.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <png.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

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

double median_ms(const std::function<void()>& f, int reps) {
  bench::Timing t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.samples_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return t.median();
}

}  // namespace

int main(int argc, char** argv) {
  std::string zoo_dir = "out/zoo", out_dir = "out/adapters", json_path;
  std::vector<std::string> models = {"resnet", "resnext", "bert", "roberta"};
  int64_t limit = 0;
  for (int i = 1; i < argc; ++i) {
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "data_adapters: %s needs a value\n", argv[i]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--zoo-dir")) zoo_dir = next();
    else if (!std::strcmp(argv[i], "--out-dir")) out_dir = next();
    else if (!std::strcmp(argv[i], "--models")) models = bench::split_list(next());
    else if (!std::strcmp(argv[i], "--limit")) limit = std::stoll(next());
    else if (!std::strcmp(argv[i], "--json")) json_path = next();
    else {
      std::fprintf(stderr, "usage: data_adapters [--zoo-dir DIR] [--out-dir DIR] [--models a,b] "
                           "[--limit N] [--json F]\n");
      return 2;
    }
  }
  try {
    at::set_num_threads(1);
    const std::string fashion_spec = export_fashion(out_dir + "/fashion-mnist", limit);
    const std::string spam_spec = export_spam(out_dir + "/spam", limit);
    std::printf("exported to %s (commit %s, %s, 1 thread)\n", out_dir.c_str(),
                bench::git_commit().c_str(), bench::cpu_model().c_str());
    std::printf("%-10s %-22s %10s %10s %12s\n", "model", "metric", "built-in", "adapter", "difference");
    nlohmann::json all = nlohmann::json::array();
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
      std::printf("%-10s %-22s %10.4f %10.4f %+12.6f\n", name.c_str(), metric_label(builtin.metric).c_str(),
                  builtin.value, adapter.value, adapter.value - builtin.value);
      // Per-sample cost of reading one input through the adapter, beside the model's compute.
      Graph bound = model;
      attach_data_spec(bound, parse_data_spec(eo.dataset), path);
      const std::unique_ptr<Dataset> data = open_dataset(bound);
      const std::vector<Payload> payloads = data->payloads("test", 50);
      size_t k = 0;
      const double prep_ms = median_ms([&] { data->preprocess(payloads[k++ % payloads.size()]); }, 200);
      InferenceSession session(bound);
      RunOptions run;
      run.threads = 1;
      const std::vector<at::Tensor> one = data->preprocess(payloads[0]);
      const double infer_ms = median_ms([&] { session.run(one, run); }, 200);
      std::printf("%-10s   %s per sample %.4f ms, inference %.4f ms\n", "",
                  text ? "tokenisation" : "decode + preprocess", prep_ms, infer_ms);
      all.push_back({{"model", name}, {"metric", builtin.metric}, {"builtin", builtin.value},
                     {"adapter", adapter.value}, {"samples", builtin.samples},
                     {"adapter_samples", adapter.samples}, {"preprocess_ms", prep_ms},
                     {"inference_ms", infer_ms}});
    }
    if (!json_path.empty())
      std::ofstream(json_path) << nlohmann::json{{"commit", bench::git_commit()},
                                                 {"cpu", bench::cpu_model()},
                                                 {"threads", 1},
                                                 {"rows", all}}.dump(2);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "data_adapters: %s\n", e.what());
    return 1;
  }
  return 0;
}
