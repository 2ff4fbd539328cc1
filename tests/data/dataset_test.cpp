// Data specs, the kinds' registry, the raw-tensors kind and the text records (edgeforge/dataset.h).
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <random>

#include "../../src/data/npy.h"
#include "../../src/data/text_records.h"
#include "../common/test_util.h"
#include "edgeforge/dataset.h"
#include "edgeforge/deploy.h"
#include "edgeforge/graph_builder.h"
#include "edgeforge/train.h"
#include "edgeforge/util.h"

namespace edgeforge {
namespace {

namespace fs = std::filesystem;
using test_util::error_of;

// A fresh folder under the test's temporary directory.
std::string temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("edgeforge-dataset-test-" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

void write(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

NpyArray npy_of(const at::Tensor& t0) {
  const at::Tensor t = t0.contiguous();
  NpyArray a;
  a.dtype = t.scalar_type() == at::kFloat ? "float32" : t.scalar_type() == at::kLong ? "int64" : "float64";
  a.shape.assign(t.sizes().begin(), t.sizes().end());
  a.data.assign(static_cast<const char*>(t.data_ptr()), t.nbytes());
  return a;
}

// x [N,4] -> Gemm -> [N,3]: a model with one tensor input.
Graph tensor_model() {
  Graph g("mlp4");
  GraphBuilder b(g, seeded_generator(11));
  std::string x = b.input("x", at::kFloat, {Dim::symbol("N"), 4});
  x = b.gemm("head", x, 4, 3);
  b.output(x, at::kFloat, {Dim::symbol("N"), 3});
  return g;
}

TEST(DataSpec, BuiltinsAndShorthands) {
  EXPECT_EQ(parse_data_spec("fashion-mnist").kind, "fashion-mnist");
  EXPECT_EQ(parse_data_spec("spam").to_metadata(), "spam");
  const std::string dir = temp_dir("shorthand");
  write(dir + "/a.jsonl", "{\"text\": \"hi\", \"label\": 1}\n");
  const DataSpec t = parse_data_spec("jsonl:" + dir + "/a.jsonl");
  EXPECT_EQ(t.kind, "text");
  EXPECT_EQ(t.fields["format"], "jsonl");
  EXPECT_EQ(t.fields["path"], dir + "/a.jsonl");
  EXPECT_EQ(t.name(), "text:" + dir + "/a.jsonl");
  // The stored form reads back to the same fields.
  const DataSpec back = data_spec_from_metadata(t.to_metadata(), "test");
  EXPECT_EQ(back.kind, t.kind);
  EXPECT_EQ(back.fields, t.fields);
}

TEST(DataSpec, BadSpecsAreNamed) {
  EXPECT_NE(error_of([] { parse_data_spec("mnist"); }).find("imagefolder:DIR"), std::string::npos);
  EXPECT_NE(error_of([] { parse_data_spec("pictures:/tmp"); }).find("unknown shorthand 'pictures'"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_data_spec("imagefolder:/no/such/folder"); }).find("does not exist"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_data_spec("/no/such/spec.toml"); }).find("not found"), std::string::npos);
  const std::string dir = temp_dir("bad-specs");
  fs::create_directories(dir + "/imgs");
  auto err = [&](const std::string& body) {
    write(dir + "/d.toml", body);
    return error_of([&] { parse_data_spec(dir + "/d.toml"); });
  };
  EXPECT_NE(err("path = 'imgs'\n").find("needs kind"), std::string::npos);
  EXPECT_NE(err("kind = 'pictures'\npath = 'imgs'\n").find("unknown data set kind 'pictures'"),
            std::string::npos);
  EXPECT_NE(err("kind = 'imagefolder'\npath = 'imgs'\ncrop = -3\n").find("'crop' is -3"), std::string::npos);
  EXPECT_NE(err("kind = 'imagefolder'\npath = 'imgs'\ncrop = 1e30\n").find("'crop'"), std::string::npos);
  EXPECT_NE(err("kind = 'imagefolder'\npath = 'imgs'\nmean = [0.5, 0.5]\n").find("expected 3"),
            std::string::npos);
  EXPECT_NE(err("kind = 'imagefolder'\npath = 'imgs'\ncolour = 'rgb'\n").find("unknown key 'colour'"),
            std::string::npos);
  EXPECT_NE(err("kind = 'imagefolder'\n").find("'path' is missing"), std::string::npos);
  EXPECT_NE(err("kind = 'imagefolder'\npath = 'imgs'\ntest = 'imgs'\n").find("exclude each other"),
            std::string::npos);
  EXPECT_NE(err("kind = 'imagefolder'\npath = 'imgs'\ninterpolation = 'lanczos'\n").find("bilinear, bicubic"),
            std::string::npos);
  EXPECT_NE(err("kind = 'imagefolder'\npath = 'imgs'\nsplit_percent = [50, 10, 10]\n").find("adding to 100"),
            std::string::npos);
  EXPECT_NE(err("kind = 'imagefolder'\npath = [1\n").find("d.toml:"), std::string::npos);
  EXPECT_NE(err("kind = 'text'\npath = 'imgs/none.jsonl'\n").find("does not exist"), std::string::npos);
}

TEST(DataSpec, ModelWithoutDataSaysHowToGiveIt) {
  const Graph g = tensor_model();
  const std::string e = error_of([&] { open_dataset(g); });
  EXPECT_NE(e.find("carries no data set; pass --data"), std::string::npos) << e;
}

TEST(DataSpec, HashSplitIsStableAndProportioned) {
  int counts[3] = {0, 0, 0};
  for (int i = 0; i < 10000; ++i) {
    const std::string s = hash_split_of("item-" + std::to_string(i));
    counts[s == "train" ? 0 : s == "validation" ? 1 : 2]++;
  }
  EXPECT_NEAR(counts[0], 8000, 300);
  EXPECT_NEAR(counts[1], 1000, 200);
  EXPECT_NEAR(counts[2], 1000, 200);
  EXPECT_EQ(hash_split_of("abc"), hash_split_of("abc"));
}

// ---- raw tensors -------------------------------------------------------------------------

struct TensorSet {
  std::string dir;
  at::Tensor x, labels;
};

TensorSet write_tensor_set(const std::string& name, int64_t n = 200) {
  TensorSet s;
  s.dir = temp_dir(name);
  at::manual_seed(3);
  s.x = at::randn({n, 4});
  s.labels = at::randint(0, 3, {n}, at::kLong);
  write_npy(s.dir + "/x.npy", npy_of(s.x));
  write_npy(s.dir + "/labels.npy", npy_of(s.labels));
  return s;
}

TEST(TensorsKind, SplitsCoverEverySampleOnceAndEvaluate) {
  const TensorSet s = write_tensor_set("tensors-ok");
  Graph g = tensor_model();
  attach_data_spec(g, parse_data_spec("npy:" + s.dir));
  const std::unique_ptr<Dataset> data = open_dataset(g);
  EXPECT_EQ(data->modality(), "tensor");
  EXPECT_TRUE(data->has_labels());
  const int64_t total = data->split_size("train") + data->split_size("validation") + data->split_size("test");
  EXPECT_EQ(total, 200);
  EXPECT_GT(data->split_size("test"), 0);
  // The test split's rows are the arrays' rows.
  const TaskData test = data->load("test", 0);
  ASSERT_EQ(test.features.count("x"), 1u);
  const at::Tensor first = test.features.at("x")[0];
  bool found = false;
  for (int64_t i = 0; i < 200 && !found; ++i) found = s.x[i].equal(first);
  EXPECT_TRUE(found);
  // Evaluation scores against the labels; integer labels take their count from the model.
  EvalOptions eo;
  const EvalResult r = evaluate(g, eo);
  EXPECT_EQ(r.samples, data->split_size("test"));
  EXPECT_EQ(r.metric, "top1");
  EXPECT_GE(r.accuracy, 0.0);
  EXPECT_TRUE(r.has_f1_macro) << "three classes";
  EXPECT_TRUE(r.has_top5 == false);
  // Agreement with itself is total, and the KL 0.
  eo.reference = &g;
  const EvalResult same = evaluate(g, eo);
  EXPECT_DOUBLE_EQ(same.agreement, 1.0);
  EXPECT_NEAR(same.kl, 0.0, 1e-6);
}

TEST(TensorsKind, PayloadsPreprocessToTheSameInputs) {
  const TensorSet s = write_tensor_set("tensors-payload", 40);
  Graph g = tensor_model();
  attach_data_spec(g, parse_data_spec("npy:" + s.dir));
  const std::unique_ptr<Dataset> data = open_dataset(g);
  const TaskData test = data->load("test", 3);
  const std::vector<Payload> payloads = data->payloads("test", 3);
  ASSERT_EQ(payloads.size(), 3u);
  const Preprocessor pre(g);  // from the model's metadata alone, as an agent does
  for (int64_t i = 0; i < 3; ++i) {
    const std::vector<at::Tensor> in = pre(payloads[static_cast<size_t>(i)]);
    ASSERT_EQ(in.size(), 1u);
    EXPECT_TRUE(in[0].equal(test.features.at("x").slice(0, i, i + 1)));
    EXPECT_EQ(payloads[static_cast<size_t>(i)].label, test.labels[i].item<int64_t>());
  }
  Payload cut = payloads[0];
  cut.bytes.resize(cut.bytes.size() - 5);
  EXPECT_NE(error_of([&] { pre(cut); }).find("truncated"), std::string::npos);
}

TEST(TensorsKind, ShapeDtypeAndInputMismatchesNameBoth) {
  const std::string dir = temp_dir("tensors-bad");
  Graph g = tensor_model();
  write_npy(dir + "/x.npy", npy_of(at::zeros({10, 5})));
  std::string e = error_of([&] { attach_data_spec(g, parse_data_spec("npy:" + dir)); open_dataset(g)->load("test", 0); });
  EXPECT_NE(e.find("[10,5]"), std::string::npos) << e;
  EXPECT_NE(e.find("[N,4]"), std::string::npos) << e;
  write_npy(dir + "/x.npy", npy_of(at::zeros({10, 4}, at::kLong)));
  e = error_of([&] { open_dataset(g)->load("test", 0); });
  EXPECT_NE(e.find("int64"), std::string::npos) << e;
  fs::remove(dir + "/x.npy");
  write_npy(dir + "/pixels.npy", npy_of(at::zeros({10, 4})));
  e = error_of([&] { open_dataset(g)->load("test", 0); });
  EXPECT_NE(e.find("input 'x' has no array"), std::string::npos) << e;
  EXPECT_NE(e.find("pixels"), std::string::npos) << e;
  fs::remove(dir + "/pixels.npy");
  write_npy(dir + "/x.npy", npy_of(at::zeros({10, 4})));
  write_npy(dir + "/labels.npy", npy_of(at::zeros({9}, at::kLong)));
  e = error_of([&] { open_dataset(g)->load("test", 0); });
  EXPECT_NE(e.find("expected [10]"), std::string::npos) << e;
}

TEST(TensorsKind, UnlabelledDataMeasuresAgreement) {
  const std::string dir = temp_dir("tensors-unlabelled");
  at::manual_seed(5);
  write_npy(dir + "/x.npy", npy_of(at::randn({100, 4})));
  Graph g = tensor_model();
  attach_data_spec(g, parse_data_spec("npy:" + dir));
  EXPECT_FALSE(open_dataset(g)->has_labels());
  EXPECT_EQ(open_dataset(g)->metric(), "agreement");
  EvalOptions eo;
  EXPECT_NE(error_of([&] { evaluate(g, eo); }).find("--reference"), std::string::npos);
  Graph other = g.clone();
  for (auto& [name, t] : other.initializers()) t.mul_(-1);  // a model that disagrees
  eo.reference = &g;
  const EvalResult r = evaluate(other, eo);
  EXPECT_FALSE(r.labelled);
  EXPECT_EQ(r.metric, "agreement");
  EXPECT_LT(r.agreement, 0.9);
  EXPECT_GT(r.kl, 0.0);
}

// ---- text records ------------------------------------------------------------------------

TEST(TextRecords, CsvFollowsRfc4180) {
  const auto rows = data::parse_csv(
      "\xEF\xBB\xBFtext,label\r\n\"a, b\",1\n\"say \"\"hi\"\"\",0\n\"two\nlines\",1\n\nlast,0", ',', "t.csv");
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0][0], "text");
  EXPECT_EQ(rows[1][0], "a, b");
  EXPECT_EQ(rows[2][0], "say \"hi\"");
  EXPECT_EQ(rows[3][0], "two\nlines");
  EXPECT_EQ(rows[4][1], "0");
  EXPECT_NE(error_of([] { data::parse_csv("a,b\n\"open,1\n", ',', "t.csv"); }).find("t.csv:2: a quoted field is not closed"),
            std::string::npos);
  EXPECT_NE(error_of([] { data::parse_csv("a\n\"x\"y\n", ',', "t.csv"); }).find("after a closing quote"),
            std::string::npos);
}

TEST(TextRecords, BadFilesNameTheLine) {
  const std::string dir = temp_dir("text-records");
  data::TextColumns cols;
  write(dir + "/r.csv", "text,label\nfine,1\nragged,1,2\n");
  EXPECT_NE(error_of([&] { data::read_csv(dir + "/r.csv", cols, ','); }).find("r.csv:3: 3 fields, the header has 2"),
            std::string::npos);
  write(dir + "/h.csv", "body,label\nx,1\n");
  EXPECT_NE(error_of([&] { data::read_csv(dir + "/h.csv", cols, ','); }).find("no column 'text'"),
            std::string::npos);
  write(dir + "/j.jsonl", "{\"text\": \"a\", \"label\": 0}\nnot json\n");
  EXPECT_NE(error_of([&] { data::read_jsonl(dir + "/j.jsonl", cols); }).find("j.jsonl:2: not a JSON object"),
            std::string::npos);
  write(dir + "/k.jsonl", "{\"body\": \"a\"}\n");
  EXPECT_NE(error_of([&] { data::read_jsonl(dir + "/k.jsonl", cols); }).find("k.jsonl:1: no field 'text'"),
            std::string::npos);
  write(dir + "/l.jsonl", "{\"text\": \"a\", \"label\": [1]}\n");
  EXPECT_NE(error_of([&] { data::read_jsonl(dir + "/l.jsonl", cols); }).find("a label is a class name"),
            std::string::npos);
}

TEST(TextRecords, CsvParserSurvivesMutations) {
  const std::string base = "text,text_pair,label\n\"a, \"\"b\"\"\",c,1\nplain,\"multi\nline\",0\n";
  std::mt19937 rng(7);
  const std::string alphabet = "\",\n\rab\x1f";
  int parsed = 0, refused = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string s = base;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      const size_t at = rng() % (s.size() + 1);
      switch (rng() % 3) {
        case 0: s.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
        case 1: if (at < s.size()) s.erase(at, 1); break;
        default: s = s.substr(0, at);
      }
    }
    try {
      const auto rows = data::parse_csv(s, ',', "fuzz.csv");
      ++parsed;
      (void)rows;
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_EQ(parsed + refused, 2000);
  EXPECT_GT(parsed, 0);
  EXPECT_GT(refused, 0);
}

}  // namespace
}  // namespace edgeforge

namespace edgeforge {
namespace {

// ---- image folders -----------------------------------------------------------------------

const std::string kImages = test_util::kFixtures + "/images";

// torchvision's Resize(48) + CenterCrop(40) + ToTensor + Normalize(ImageNet) of a fixture image,
// as tests/data/make_image_fixtures.py saved it.
at::Tensor torchvision_r48c40(const std::string& image) {
  const NpyArray a = read_npy(kImages + "/" + image + ".r48c40_bilinear.npy");
  EXPECT_EQ(a.dtype, "float32");
  at::Tensor t = at::empty(a.shape, at::kFloat);
  std::memcpy(t.data_ptr(), a.data.data(), a.data.size());
  return t;
}

// An ImageNet-style folder: test/<class>/<file>, two classes.
std::string image_folder(const std::string& name) {
  const std::string dir = temp_dir(name);
  for (const auto& [cls, file] : std::vector<std::pair<std::string, std::string>>{
           {"cat", "photo_422.jpg"}, {"cat", "photo_444.jpg"}, {"dog", "progressive.jpg"}, {"dog", "rgba.png"}}) {
    fs::create_directories(dir + "/test/" + cls);
    fs::copy_file(kImages + "/" + file, dir + "/test/" + cls + "/" + file);
  }
  return dir;
}

// Within this of torchvision after normalisation: one 8-bit level over the smallest std.
constexpr float kTorchvisionMaxAbsDiff = 1.0f / 255.0f / 0.225f + 1e-5f;

TEST(ImageFolderKind, MatchesTorchvisionAndTheClassLayout) {
  const std::string dir = image_folder("imagefolder-ok");
  write(dir + "/d.toml", "kind = 'imagefolder'\ntest = 'test'\nresize = 48\ncrop = 40\n");
  Graph none("(no model)");
  attach_data_spec(none, parse_data_spec(dir + "/d.toml"));
  const std::unique_ptr<Dataset> data = open_dataset(none);
  EXPECT_EQ(data->class_names(), (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(data->split_size("test"), 4);
  EXPECT_NE(error_of([&] { data->split_size("train"); }).find("has no train split"), std::string::npos);
  const TaskData test = data->load("test", 0);
  EXPECT_TRUE(test.labels.equal(at::tensor({0, 0, 1, 1}, at::kLong)));
  ASSERT_TRUE(static_cast<bool>(test.fetch));  // decoded per batch
  const at::Tensor batch = test.fetch(at::arange(4)).at("input");
  ASSERT_EQ(batch.sizes(), (std::vector<int64_t>{4, 3, 40, 40}));
  const char* files[] = {"photo_422.jpg", "photo_444.jpg", "progressive.jpg", "rgba.png"};
  for (int i = 0; i < 4; ++i) {
    const float diff = (batch[i] - torchvision_r48c40(files[i])).abs().max().item<float>();
    EXPECT_LE(diff, kTorchvisionMaxAbsDiff) << files[i];
  }
  // A payload is the file as stored; preprocessing it gives the same row.
  const std::vector<Payload> payloads = data->payloads("test", 0);
  ASSERT_EQ(payloads.size(), 4u);
  EXPECT_EQ(payloads[0].kind, "image");
  EXPECT_EQ(payloads[0].bytes, read_file(kImages + "/photo_422.jpg"));
  EXPECT_TRUE(data->preprocess(payloads[3])[0][0].equal(batch[3]));
}

TEST(ImageFolderKind, CropFollowsTheModelAndChannelsMustFit) {
  const std::string dir = image_folder("imagefolder-model");
  Graph g = test_util::small_image_model();  // [N,1,28,28]
  g.metadata().erase(kMetaDataset);
  attach_data_spec(g, parse_data_spec("imagefolder:" + dir + "/test"));
  const std::unique_ptr<Dataset> data = open_dataset(g);
  EXPECT_EQ(data->spec().fields["crop_height"], 28);
  EXPECT_EQ(data->spec().fields["resize"], 32);  // 28 / 0.875
  EXPECT_EQ(data->spec().fields["channels"], "grey");
  EXPECT_EQ(data->load("test", 0).size() + data->load("train", 0).size() + data->load("validation", 0).size(), 4);
  // ImageNet's layout, DIR/train and DIR/val: the folders are the splits.
  const std::string imagenet = temp_dir("imagefolder-imagenet");
  fs::create_directories(imagenet + "/train");
  fs::copy(dir + "/test", imagenet + "/train", fs::copy_options::recursive);
  fs::copy(dir + "/test", imagenet + "/val", fs::copy_options::recursive);
  fs::remove(imagenet + "/val/cat/photo_422.jpg");
  attach_data_spec(g, parse_data_spec("imagefolder:" + imagenet));
  const std::unique_ptr<Dataset> split_by_folder = open_dataset(g);
  EXPECT_EQ(split_by_folder->split_size("train"), 4);
  EXPECT_EQ(split_by_folder->split_size("test"), 3);  // val is scored, as ImageNet's is
  EXPECT_NE(error_of([&] { split_by_folder->split_size("validation"); }).find("has no validation split"),
            std::string::npos);
  write(imagenet + "/hashed.toml", "kind = 'imagefolder'\npath = '.'\nsplit_percent = [80, 10, 10]\n");
  attach_data_spec(g, parse_data_spec(imagenet + "/hashed.toml"));  // split_percent: one set, by hash
  EXPECT_EQ(open_dataset(g)->class_names(), (std::vector<std::string>{"train", "val"}));
  // Splits that share a folder each see its files once.
  write(dir + "/shared.toml", "kind = 'imagefolder'\ntrain = 'test'\ntest = 'test'\n");
  attach_data_spec(g, parse_data_spec(dir + "/shared.toml"));
  EXPECT_EQ(open_dataset(g)->split_size("train"), 4);
  EXPECT_EQ(open_dataset(g)->load("test", 0).size(), 4);
  write(dir + "/rgb.toml", "kind = 'imagefolder'\npath = 'test'\nchannels = 'rgb'\n");
  const std::string e = error_of([&] { attach_data_spec(g, parse_data_spec(dir + "/rgb.toml")); });
  EXPECT_NE(e.find("has 1"), std::string::npos) << e;
}

TEST(ImageFolderKind, BadFoldersAndFilesAreNamed) {
  Graph none("(no model)");
  auto load_error = [&](const std::string& arg) {
    return error_of([&] {
      Graph g("(no model)");
      attach_data_spec(g, parse_data_spec(arg));
      const std::unique_ptr<Dataset> d = open_dataset(g);
      const TaskData t = d->load("test", 0);
      t.fetch(at::arange(t.size()));
    });
  };
  const std::string empty = temp_dir("imagefolder-empty");
  EXPECT_NE(load_error("imagefolder:" + empty).find("has no images"), std::string::npos);
  const std::string no_images = image_folder("imagefolder-noimages");
  fs::create_directories(no_images + "/test/zebra");
  write(no_images + "/test/zebra/notes.txt", "not an image");
  EXPECT_NE(load_error("imagefolder:" + no_images + "/test").find("zebra has no images"), std::string::npos);
  const std::string truncated = image_folder("imagefolder-truncated");
  fs::copy_file(kImages + "/truncated.jpg", truncated + "/test/cat/truncated.jpg");
  write(truncated + "/d.toml", "kind = 'imagefolder'\ntest = 'test'\n");
  EXPECT_NE(load_error(truncated + "/d.toml").find("truncated.jpg"), std::string::npos);
  // A flat folder with a labels file.
  const std::string flat = temp_dir("imagefolder-flat");
  fs::create_directories(flat + "/val");
  fs::copy_file(kImages + "/photo.jpg", flat + "/val/a.jpg");
  fs::copy_file(kImages + "/rgba.png", flat + "/val/b.png");
  write(flat + "/labels.txt", "a.jpg cat\nb.png dog\n");
  write(flat + "/d.toml", "kind = 'imagefolder'\ntest = 'val'\nlabels_file = 'labels.txt'\n");
  attach_data_spec(none, parse_data_spec(flat + "/d.toml"));
  EXPECT_TRUE(open_dataset(none)->load("test", 0).labels.equal(at::tensor({0, 1}, at::kLong)));
  write(flat + "/labels.txt", "a.jpg cat\nb.png dog\nc.jpg cat\n");
  EXPECT_NE(load_error(flat + "/d.toml").find("names c.jpg"), std::string::npos);
  write(flat + "/labels.txt", "a.jpg cat\nb.png bird\n");
  write(flat + "/d2.toml", "kind = 'imagefolder'\ntest = 'val'\nlabels_file = 'labels.txt'\nclasses = ['cat', 'dog']\n");
  EXPECT_NE(load_error(flat + "/d2.toml").find("label 'bird' is not a known class"), std::string::npos);
  write(flat + "/labels.txt", "a.jpg cat\n");
  EXPECT_NE(load_error(flat + "/d.toml").find("no label for"), std::string::npos);
}

}  // namespace
}  // namespace edgeforge

namespace edgeforge {
namespace {

// A zoo text model read through a JSONL file tokenises as the built-in spam reader does, and
// the bound spec reopens from the model's metadata alone.
TEST(TextKind, ZooModelsUseTheirOwnTokenizerThroughAJsonlFile) {
  const std::string dir = temp_dir("text-zoo");
  std::ofstream out(dir + "/t.jsonl");
  for (int i = 0; i < 40; ++i)
    out << nlohmann::json{{"text", "cheap meds offer number " + std::to_string(i)}, {"label", i % 2 ? "spam" : "ham"}}.dump() << "\n";
  out.close();
  Graph g = test_util::small_text_model();
  attach_data_spec(g, parse_data_spec("jsonl:" + dir + "/t.jsonl"));
  const std::unique_ptr<Dataset> data = open_dataset(g);  // from the metadata
  EXPECT_EQ(data->spec().fields["tokenizer"], "model");
  EXPECT_EQ(data->class_names(), (std::vector<std::string>{"ham", "spam"}));
  const TaskData test = data->load("test", 1);
  ASSERT_EQ(test.size(), 1);
  const std::vector<Payload> p = data->payloads("test", 1);
  const Tokenizer tok = tokenizer_from_model(g);
  const Tokenizer::Batch want = tok.encode_batch({p[0].bytes}, model_seq_len(g));
  EXPECT_TRUE(test.features.at("input_ids").equal(want.input_ids));
  EXPECT_TRUE(test.features.at("attention_mask").equal(want.attention_mask));
}

}  // namespace
}  // namespace edgeforge

namespace edgeforge {
namespace {

// A SentencePiece .model is encoded by libsentencepiece itself; the data set adds the special
// tokens of the family the model comes from, truncates as Hugging Face does, and embeds the
// model in the bound spec so it reopens from metadata alone.
TEST(TextKind, SentencePieceModelsTakeTheirFamilysSpecialTokens) {
  const std::string dir = temp_dir("text-spm");
  std::vector<std::string> corpus;
  for (int i = 0; i < 200; ++i)
    corpus.push_back("the meeting number " + std::to_string(i) + " is moved to friday, cheap offer " +
                     std::to_string(i * 7));
  TokenizerOptions to;
  to.vocab_size = 80;
  const Tokenizer tok = Tokenizer::train(corpus, to);  // [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3
  write(dir + "/spiece.model", tok.to_bytes());
  std::ofstream out(dir + "/pairs.jsonl");
  out << nlohmann::json{{"text", "the meeting is moved"}, {"hypothesis", "cheap offer"}, {"label", 1}}.dump() << "\n";
  out.close();
  auto encoded = [&](const std::string& style, int64_t max_length) {
    write(dir + "/d.toml", "kind = 'text'\ntest = 'pairs.jsonl'\ntokenizer = 'spiece.model'\n"
                           "text_pair_column = 'hypothesis'\nsentencepiece = '" + style + "'\nmax_length = " +
                               std::to_string(max_length) + "\n");
    Graph g = test_util::small_text_model();
    g.metadata().erase(kMetaDataset);
    attach_data_spec(g, parse_data_spec(dir + "/d.toml"));
    const TaskData t = open_dataset(g)->load("test", 0);  // reopened from the metadata
    auto row = [&](const char* name) {
      const at::Tensor r = t.features.at(name)[0].contiguous();
      return std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
    };
    return std::make_tuple(row("input_ids"), row("token_type_ids"), row("attention_mask"), g);
  };
  const std::vector<int64_t> a = tok.encode("the meeting is moved"), b = tok.encode("cheap offer");
  ASSERT_GE(a.size(), 3u);
  ASSERT_GE(b.size(), 2u);
  // auto: the model has [CLS] and [SEP], so ALBERT's [CLS] A [SEP] B [SEP], types 0 then 1.
  {
    const auto [ids, types, mask, g] = encoded("auto", 32);
    std::vector<int64_t> want = {2};
    want.insert(want.end(), a.begin(), a.end());
    want.push_back(3);
    const size_t first = want.size();
    want.insert(want.end(), b.begin(), b.end());
    want.push_back(3);
    const size_t used = want.size();
    want.resize(32, 0);
    EXPECT_EQ(ids, want);
    for (size_t i = 0; i < 32; ++i) {
      EXPECT_EQ(types[i], i >= first && i < used ? 1 : 0) << i;
      EXPECT_EQ(mask[i], i < used ? 1 : 0) << i;
    }
    EXPECT_EQ(nlohmann::json::parse(g.metadata().at(kMetaDataset))["sentencepiece"], "albert");
  }
  // xlmr: fairseq's ids, <s> A </s></s> B </s>, padding 1.
  {
    const auto [ids, types, mask, g] = encoded("xlmr", 32);
    std::vector<int64_t> want = {0};
    for (int64_t i : a) want.push_back(i == tok.unk_id() ? 3 : i + 1);
    want.insert(want.end(), {2, 2});
    for (int64_t i : b) want.push_back(i == tok.unk_id() ? 3 : i + 1);
    want.push_back(2);
    want.resize(32, 1);
    EXPECT_EQ(ids, want);
    EXPECT_EQ(std::count(types.begin(), types.end(), 1), 0);
  }
  // longest_first truncation as Hugging Face's truncate_encodings: the shorter text stays whole
  // when it fits beside the rest, else each text gets half of what is left.
  {
    const std::vector<int64_t>& shorter = a.size() <= b.size() ? a : b;
    const std::vector<int64_t>& longer = a.size() <= b.size() ? b : a;
    ASSERT_LT(shorter.size() + 2, longer.size());
    auto expect = [&](size_t budget, size_t keep_short, size_t keep_long) {
      const auto [ids, types, mask, g] = encoded("albert", static_cast<int64_t>(budget) + 3);
      const std::vector<int64_t>& first = &shorter == &a ? shorter : longer;
      const std::vector<int64_t>& second = &shorter == &a ? longer : shorter;
      const size_t n1 = &shorter == &a ? keep_short : keep_long, n2 = &shorter == &a ? keep_long : keep_short;
      std::vector<int64_t> want = {2};
      want.insert(want.end(), first.begin(), first.begin() + static_cast<std::ptrdiff_t>(n1));
      want.push_back(3);
      want.insert(want.end(), second.begin(), second.begin() + static_cast<std::ptrdiff_t>(n2));
      want.push_back(3);
      EXPECT_EQ(ids, want) << "budget " << budget;
    };
    const size_t both = shorter.size() * 2;  // the shorter fits beside an equal share of the longer
    expect(both, shorter.size(), shorter.size());
    expect(shorter.size() + 1, (shorter.size() + 1) / 2, (shorter.size() + 1) / 2 + (shorter.size() + 1) % 2);
  }
  write(dir + "/bad.toml", "kind = 'text'\ntest = 'pairs.jsonl'\ntokenizer = 'spiece.model'\nsentencepiece = 'gpt'\n");
  EXPECT_NE(error_of([&] { parse_data_spec(dir + "/bad.toml"); }).find("sentencepiece"), std::string::npos);
  write(dir + "/broken.model", "not a model");
  write(dir + "/broken.toml", "kind = 'text'\ntest = 'pairs.jsonl'\ntokenizer = 'broken.model'\n");
  const std::string e = error_of([&] {
    Graph g = test_util::small_text_model();
    attach_data_spec(g, parse_data_spec(dir + "/broken.toml"));
  });
  EXPECT_NE(e.find("broken.model"), std::string::npos) << e;
  EXPECT_NE(e.find("not a SentencePiece model"), std::string::npos) << e;
}

}  // namespace
}  // namespace edgeforge
