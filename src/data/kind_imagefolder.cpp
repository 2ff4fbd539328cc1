// The image-folder data-set kind: a user's JPEG/PNG files, in torchvision's ImageFolder layout
// (root/<class>/*.jpg, classes sorted by name) or a flat folder with a labels file, preprocessed
// as torchvision's ImageNet evaluation transforms do (image_io.h).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "edgeforge/dataset.h"
#include "edgeforge/error.h"
#include "edgeforge/util.h"
#include "image_io.h"
#include "spec_fields.h"

namespace edgeforge {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kMetrics = {"auto", "top1", "top5", "accuracy", "f1", "f1_macro", "agreement"};

// ImageNet's statistics, torchvision's defaults.
const std::vector<double> kImagenetMean = {0.485, 0.456, 0.406};
const std::vector<double> kImagenetStd = {0.229, 0.224, 0.225};

void check_imagefolder(DataSpec& spec, const std::string& base_dir) {
  data::Fields f(spec, base_dir);
  const bool percent_given = spec.fields.contains("split_percent");
  const data::SplitSources src = data::SplitSources::read(f, true);
  f.path("labels_file", true);
  f.texts("classes", {});
  // 0: chosen for the model when the spec is bound (crop: the model's fixed size, else 224;
  // resize: crop / 0.875, as the ImageNet recipe resizes 256 for a 224 crop).
  f.integer("crop", 0, 0, 8192);
  f.integer("crop_height", 0, 0, 8192);
  f.integer("crop_width", 0, 0, 8192);
  f.integer("resize", 0, 0, 16384);
  f.choice("interpolation", "bilinear", {"bilinear", "bicubic", "nearest"});
  const std::vector<double> mean = f.numbers("mean", kImagenetMean, 0, -1e6, 1e6);
  const std::vector<double> stds = f.numbers("std", kImagenetStd, 0, 1e-12, 1e6);
  if (mean.size() != 1 && mean.size() != 3) f.fail("mean", "has " + std::to_string(mean.size()) + " numbers; expected 3 (or 1 for every channel)");
  if (stds.size() != 1 && stds.size() != 3) f.fail("std", "has " + std::to_string(stds.size()) + " numbers; expected 3 (or 1 for every channel)");
  f.number("scale", 1.0 / 255.0, 1e-12, 1e6);
  f.choice("channels", "auto", {"auto", "rgb", "bgr", "grey"});
  f.choice("layout", "auto", {"auto", "nchw", "nhwc"});
  f.text("input", "");
  f.choice("metric", "auto", kMetrics);
  f.texts("extensions", {".jpg", ".jpeg", ".png"});
  f.done();
  // torchvision's and ImageNet's own layout, DIR/train with DIR/val (or validation, test): the
  // folders are the splits, not one set to split by hash. With train and val alone, val is what
  // the model is scored on (the test split), as ImageNet's validation set is.
  std::error_code ec;
  const fs::path root = src.path;
  auto sub = [&](const char* name) { return fs::is_directory(root / name, ec) ? (root / name).string() : std::string(); };
  const std::string train = src.hashed() ? sub("train") : "";
  const std::string val = !sub("val").empty() ? sub("val") : sub("validation");
  const std::string test = sub("test");
  if (!percent_given && !train.empty() && (!val.empty() || !test.empty())) {
    spec.fields.erase("path");
    spec.fields["train"] = train;
    spec.fields["test"] = test.empty() ? val : test;
    if (!test.empty() && !val.empty()) spec.fields["validation"] = val;
  }
}

struct Item {
  std::string path;   // absolute
  std::string key;    // relative to its folder: what the hash split keys on
  int64_t label = -1;
};

class ImageFolder : public Dataset {
 public:
  ImageFolder(const DataSpec& spec, const Graph& model) {
    spec_ = spec;
    nlohmann::json& f = spec_.fields;
    model_ = model.name();
    const bool bound = std::any_of(model.inputs().begin(), model.inputs().end(),
                                   [&](const ValueInfo& v) { return !model.has_initializer(v.name); });
    ValueInfo in;
    in.name = f.value("input", std::string());
    if (bound) in = data::pick_model_input(model, in.name, spec_.name());
    if (in.name.empty()) in.name = "input";
    input_ = in.name;
    f["input"] = input_;
    dtype_ = bound ? in.dtype : at::kFloat;
    EF_CHECK(dtype_ == at::kFloat || dtype_ == at::kByte || dtype_ == at::kHalf || dtype_ == at::kDouble,
             "data set ", spec_.name(), ": model input '", input_, "' is ", dtype_,
             "; an image folder feeds float or uint8 images");
    // Layout and channels from the input's shape where the spec leaves them to us.
    std::string layout = f.value("layout", std::string("auto"));
    std::string channels = f.value("channels", std::string("auto"));
    int64_t dim_c = -1, dim_h = -1, dim_w = -1;
    if (bound) {
      EF_CHECK(in.has_shape && in.shape.size() == 4, "data set ", spec_.name(), ": model input '",
               input_, "' has rank ", in.has_shape ? std::to_string(in.shape.size()) : "unknown",
               "; an image folder feeds [N,C,H,W] or [N,H,W,C]");
      auto fixed = [](const Dim& d) { return d.is_fixed() ? d.size : int64_t{-1}; };
      if (layout == "auto") {
        const int64_t c1 = fixed(in.shape[1]), c3 = fixed(in.shape[3]);
        layout = (c3 == 1 || c3 == 3) && !(c1 == 1 || c1 == 3) ? "nhwc" : "nchw";
      }
      const bool nhwc = layout == "nhwc";
      dim_c = fixed(in.shape[nhwc ? 3 : 1]);
      dim_h = fixed(in.shape[nhwc ? 1 : 2]);
      dim_w = fixed(in.shape[nhwc ? 2 : 3]);
    }
    if (layout == "auto") layout = "nchw";
    if (channels == "auto") channels = dim_c == 1 ? "grey" : "rgb";
    const int64_t want_c = channels == "grey" ? 1 : 3;
    EF_CHECK(dim_c < 0 || dim_c == want_c, "data set ", spec_.name(), ": channels = ", channels,
             " gives ", want_c, " channel", want_c == 1 ? "" : "s", ", but model input '", input_,
             "' has ", dim_c);
    f["layout"] = layout;
    f["channels"] = channels;
    // Crop: the spec's, else the model's fixed size, else 224.
    int64_t crop_h = f.value("crop_height", int64_t{0}), crop_w = f.value("crop_width", int64_t{0});
    const int64_t crop = f.value("crop", int64_t{0});
    if (crop_h == 0) crop_h = crop > 0 ? crop : (dim_h > 0 ? dim_h : 224);
    if (crop_w == 0) crop_w = crop > 0 ? crop : (dim_w > 0 ? dim_w : 224);
    EF_CHECK((dim_h < 0 || dim_h == crop_h) && (dim_w < 0 || dim_w == crop_w), "data set ",
             spec_.name(), ": a ", crop_w, "x", crop_h, " crop does not fit model input '", input_,
             "' of ", dim_w, "x", dim_h, " (width x height)");
    int64_t resize = f.value("resize", int64_t{0});
    if (resize == 0) resize = static_cast<int64_t>(std::lround(std::min(crop_h, crop_w) / 0.875));
    f["crop_height"] = crop_h;
    f["crop_width"] = crop_w;
    f.erase("crop");
    f["resize"] = resize;
    crop_h_ = crop_h;
    crop_w_ = crop_w;
    resize_ = resize;
    const std::string interp = f.value("interpolation", std::string("bilinear"));
    filter_ = interp == "bicubic" ? image::Filter::kBicubic
              : interp == "nearest" ? image::Filter::kNearest
                                    : image::Filter::kBilinear;
    grey_ = channels == "grey";
    const std::vector<double> mean = f.value("mean", kImagenetMean);
    const std::vector<double> stds = f.value("std", kImagenetStd);
    EF_CHECK(mean.size() == 1 || mean.size() == 3, spec_.source, ": 'mean' needs 1 or 3 numbers");
    EF_CHECK(stds.size() == 1 || stds.size() == 3, spec_.source, ": 'std' needs 1 or 3 numbers");
    for (size_t c = 0; c < 3; ++c) {
      norm_.mean[c] = static_cast<float>(mean[mean.size() == 3 ? c : 0]);
      norm_.std[c] = static_cast<float>(stds[stds.size() == 3 ? c : 0]);
    }
    norm_.scale = static_cast<float>(f.value("scale", 1.0 / 255.0));
    norm_.bgr = channels == "bgr";
    norm_.nhwc = layout == "nhwc";
    for (const std::string& e : f.value("extensions", std::vector<std::string>{".jpg", ".jpeg", ".png"})) {
      std::string lower = e;
      std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
      extensions_.push_back(lower);
    }
  }

  std::string modality() const override { return "image"; }
  std::vector<std::string> class_names() const override { return index().classes; }
  bool has_labels() const override { return index().labelled; }
  int64_t split_size(const std::string& split) const override {
    return static_cast<int64_t>(items(split, 0).size());
  }

  TaskData load(const std::string& split, int64_t limit) const override {
    const std::vector<Item> picked = items(split, limit);
    const Index& ix = index();
    TaskData d;
    d.dataset = spec_.name();
    d.split = split;
    d.class_names = ix.classes;
    d.num_classes = static_cast<int64_t>(ix.classes.size());
    d.count = static_cast<int64_t>(picked.size());
    if (ix.labelled) {
      std::vector<int64_t> labels;
      for (const Item& it : picked) labels.push_back(it.label);
      d.labels = at::tensor(labels, at::kLong);
    }
    auto files = std::make_shared<std::vector<Item>>(picked);
    // TaskData may outlive the data set: fetch holds copies of what it needs.
    auto prep = std::make_shared<Prep>(prep_params());
    const std::string input = input_;
    d.fetch = [files, prep, input](const at::Tensor& indices) {
      const at::Tensor idx = indices.to(at::kLong).contiguous();
      const int64_t n = idx.numel();
      const int64_t* ix = idx.data_ptr<int64_t>();
      at::Tensor batch = at::empty(prep->shape(n), at::TensorOptions(prep->dtype));
      const int64_t per = batch.numel() / std::max<int64_t>(n, 1);
      at::parallel_for(0, n, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) {
          EF_CHECK(ix[i] >= 0 && ix[i] < static_cast<int64_t>(files->size()), "image index ", ix[i],
                   " out of range");
          const Item& it = (*files)[static_cast<size_t>(ix[i])];
          prep->run(image::read_image(it.path), batch, i, per);
        }
      });
      return std::map<std::string, at::Tensor>{{input, batch}};
    };
    return d;
  }

  std::vector<Payload> payloads(const std::string& split, int64_t limit) const override {
    std::vector<Payload> out;
    for (const Item& it : items(split, limit)) {
      Payload p;
      p.kind = "image";
      p.bytes = read_file(it.path);
      p.label = it.label;
      out.push_back(std::move(p));
    }
    return out;
  }

  std::vector<at::Tensor> preprocess(const Payload& p) const override {
    EF_CHECK(p.kind == "image", "model '", model_, "' takes an image file, not ", p.kind);
    const Prep prep = prep_params();
    at::Tensor out = at::empty(prep.shape(1), at::TensorOptions(prep.dtype));
    prep.run(image::decode(p.bytes, "payload"), out, 0, out.numel());
    return {out};
  }

  nlohmann::json describe() const override {
    const nlohmann::json& f = spec_.fields;
    char buf[256];
    std::snprintf(buf, sizeof buf, "resize %lld (%s, shorter side), centre crop %lldx%lld, %s, %s",
                  static_cast<long long>(resize_), f.value("interpolation", std::string()).c_str(),
                  static_cast<long long>(crop_w_), static_cast<long long>(crop_h_),
                  f.value("channels", std::string()).c_str(), f.value("layout", std::string()).c_str());
    nlohmann::json j = {{"preprocess", buf},
                        {"normalize", {{"scale", norm_.scale},
                                       {"mean", f.value("mean", kImagenetMean)},
                                       {"std", f.value("std", kImagenetStd)}}},
                        {"input", input_},
                        {"layout", index().layout}};
    return j;
  }

 private:
  // What turns a decoded image into one row of the model's input; copied into fetch closures.
  struct Prep {
    int64_t resize = 256, crop_h = 224, crop_w = 224;
    image::Filter filter = image::Filter::kBilinear;
    bool grey = false;
    image::NormalizeOptions norm;
    at::ScalarType dtype = at::kFloat;

    std::vector<int64_t> shape(int64_t n) const {
      const int64_t c = grey ? 1 : 3;
      return norm.nhwc ? std::vector<int64_t>{n, crop_h, crop_w, c} : std::vector<int64_t>{n, c, crop_h, crop_w};
    }
    void run(image::Image decoded, at::Tensor& batch, int64_t row, int64_t per) const {
      image::Image img = grey ? image::to_grey(std::move(decoded)) : image::to_rgb(std::move(decoded));
      img = image::center_crop(image::resize_shorter_side(img, resize, filter), crop_h, crop_w);
      if (dtype == at::kByte) {
        // A model that takes uint8 pixels normalises inside itself: the crop's bytes as they are.
        uint8_t* out = batch.data_ptr<uint8_t>() + row * per;
        const int64_t c = img.channels, hw = img.height * img.width;
        for (int64_t p = 0; p < hw; ++p)
          for (int64_t k = 0; k < c; ++k) {
            const int64_t src = p * c + (norm.bgr ? c - 1 - k : k);
            out[norm.nhwc ? p * c + k : k * hw + p] = img.pixels[static_cast<size_t>(src)];
          }
        return;
      }
      if (dtype == at::kFloat) {
        image::normalize_into(img, norm, batch.data_ptr<float>() + row * per);
        return;
      }
      std::vector<float> tmp(static_cast<size_t>(per));
      image::normalize_into(img, norm, tmp.data());
      batch.select(0, row).copy_(at::from_blob(tmp.data(), batch.select(0, row).sizes(), at::kFloat));
    }
  };

  Prep prep_params() const {
    Prep p;
    p.resize = resize_;
    p.crop_h = crop_h_;
    p.crop_w = crop_w_;
    p.filter = filter_;
    p.grey = grey_;
    p.norm = norm_;
    p.dtype = dtype_;
    return p;
  }

  bool is_image(const fs::path& p) const {
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    return std::find(extensions_.begin(), extensions_.end(), ext) != extensions_.end();
  }

  // Every folder's listing, read once.
  struct Index {
    std::string layout;  // "class folders" or "flat"
    std::vector<std::string> classes;
    bool labelled = false;
    std::map<std::string, std::vector<Item>> by_folder;  // folder -> its items in order
  };

  const Index& index() const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (index_) return *index_;
    auto ix = std::make_unique<Index>();
    const nlohmann::json& f = spec_.fields;
    std::vector<std::string> folders;
    if (f.contains("path")) folders.push_back(f["path"].get<std::string>());
    for (const char* s : {"train", "validation", "test"})  // splits may share a folder
      if (f.contains(s) && std::find(folders.begin(), folders.end(), f[s].get<std::string>()) == folders.end())
        folders.push_back(f[s].get<std::string>());
    const std::string labels_file = f.value("labels_file", std::string());
    // Layout: class folders when the first folder holds sub-folders, else flat.
    std::map<std::string, std::vector<std::pair<std::string, std::string>>> listing;  // folder -> (key, class)
    bool class_folders = false;
    for (const std::string& folder : folders) {
      std::error_code ec;
      EF_CHECK(fs::is_directory(folder, ec), "data set ", spec_.name(), ": ", folder, " is not a folder");
      for (const fs::directory_entry& e : fs::directory_iterator(folder, ec))
        if (e.is_directory() && e.path().filename().string()[0] != '.') class_folders = true;
    }
    EF_CHECK(!(class_folders && !labels_file.empty()), "data set ", spec_.name(),
             ": labels_file is for a flat folder of images, but the folder has class sub-folders");
    std::set<std::string> class_set;
    for (const std::string& folder : folders) {
      std::vector<std::pair<std::string, std::string>>& items = listing[folder];
      std::error_code ec;
      if (class_folders) {
        std::vector<std::string> subdirs;
        for (const fs::directory_entry& e : fs::directory_iterator(folder, ec))
          if (e.is_directory() && e.path().filename().string()[0] != '.')
            subdirs.push_back(e.path().filename().string());
        std::sort(subdirs.begin(), subdirs.end());
        for (const std::string& cls : subdirs) {
          std::vector<std::string> files;
          for (const fs::directory_entry& e : fs::recursive_directory_iterator(
                   fs::path(folder) / cls, fs::directory_options::follow_directory_symlink, ec))
            if (e.is_regular_file() && is_image(e.path()))
              files.push_back(fs::relative(e.path(), folder).string());
          EF_CHECK(!files.empty(), "data set ", spec_.name(), ": class folder ",
                   (fs::path(folder) / cls).string(), " has no images (",
                   join_exts(), ")");
          std::sort(files.begin(), files.end());
          for (std::string& file : files) items.emplace_back(std::move(file), cls);
          class_set.insert(cls);
        }
      } else {
        std::vector<std::string> files;
        for (const fs::directory_entry& e : fs::directory_iterator(folder, ec))
          if (e.is_regular_file() && is_image(e.path())) files.push_back(e.path().filename().string());
        std::sort(files.begin(), files.end());
        for (std::string& file : files) items.emplace_back(std::move(file), "");
      }
      EF_CHECK(!items.empty(), "data set ", spec_.name(), ": folder ", folder, " has no images (",
               join_exts(), ")");
    }
    std::vector<std::string> declared = f.value("classes", std::vector<std::string>{});
    if (class_folders) {
      ix->layout = "class folders";
      ix->labelled = true;
      ix->classes = declared.empty() ? std::vector<std::string>(class_set.begin(), class_set.end()) : declared;
      for (auto& [folder, items] : listing)
        for (const auto& [key, cls] : items) {
          auto at = std::find(ix->classes.begin(), ix->classes.end(), cls);
          EF_CHECK(at != ix->classes.end(), "data set ", spec_.name(), ": class folder '", cls,
                   "' is not among the declared classes");
          ix->by_folder[folder].push_back({(fs::path(folder) / key).string(), key, at - ix->classes.begin()});
        }
    } else if (!labels_file.empty()) {
      ix->layout = "flat, labels from " + labels_file;
      ix->labelled = true;
      // "file label" lines (ImageNet's validation ground truth); '#' starts a comment.
      std::map<std::string, std::string> label_of;
      std::vector<std::string> seen;
      std::istringstream in(read_file(labels_file));
      std::string line;
      int line_no = 0;
      while (std::getline(in, line)) {
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        std::istringstream words(line);
        std::string file, label, extra;
        if (!(words >> file) || file[0] == '#') continue;
        const std::string where = labels_file + ":" + std::to_string(line_no);
        EF_CHECK(static_cast<bool>(words >> label) && !(words >> extra), where,
                 ": expected 'file label', got '", line, "'");
        EF_CHECK(label_of.emplace(file, label).second, where, ": '", file, "' is labelled twice");
        seen.push_back(label);
      }
      EF_CHECK(!label_of.empty(), "labels file ", labels_file, " has no 'file label' lines");
      const data::LabelMap map = data::make_label_map(seen, declared, spec_.name());
      ix->classes = map.classes;
      std::set<std::string> present;
      for (auto& [folder, items] : listing)
        for (const auto& [key, cls] : items) {
          present.insert(key);
          auto it = label_of.find(key);
          EF_CHECK(it != label_of.end(), "labels file ", labels_file, " has no label for ",
                   (fs::path(folder) / key).string());
          ix->by_folder[folder].push_back({(fs::path(folder) / key).string(), key,
                                           map.index_of(it->second, "labels file " + labels_file)});
        }
      for (const auto& [file, label] : label_of)
        EF_CHECK(present.count(file) != 0, "labels file ", labels_file, " names ", file,
                 ", which is not an image in ", folders.front());
    } else {
      ix->layout = "flat, unlabelled";
      ix->classes = declared;
      for (auto& [folder, items] : listing)
        for (const auto& [key, cls] : items)
          ix->by_folder[folder].push_back({(fs::path(folder) / key).string(), key, -1});
    }
    index_ = std::move(ix);
    return *index_;
  }

  std::string join_exts() const {
    std::string s;
    for (const std::string& e : extensions_) s += (s.empty() ? "" : ", ") + e;
    return s;
  }

  std::vector<Item> items(const std::string& split, int64_t limit) const {
    const data::SplitSources splits = data::SplitSources::of(spec_.fields);
    const std::string& folder = splits.source_for(split, spec_.name());
    std::vector<Item> out;
    for (const Item& it : index().by_folder.at(folder))
      if (splits.keeps(it.key, split)) out.push_back(it);
    if (limit > 0 && static_cast<int64_t>(out.size()) > limit) out.resize(static_cast<size_t>(limit));
    return out;
  }

  std::string model_, input_;
  at::ScalarType dtype_ = at::kFloat;
  int64_t crop_h_ = 224, crop_w_ = 224, resize_ = 256;
  image::Filter filter_ = image::Filter::kBilinear;
  bool grey_ = false;
  image::NormalizeOptions norm_;
  std::vector<std::string> extensions_;
  mutable std::mutex mutex_;
  mutable std::unique_ptr<Index> index_;
};

}  // namespace

EF_REGISTER_DATA_KIND((DataKind{
    "imagefolder",
    "JPEG/PNG files: root/<class>/*.jpg (classes sorted by name, as torchvision's ImageFolder) "
    "or a flat folder with a labels file; torchvision's resize, centre crop and normalisation",
    "image", check_imagefolder,
    [](const DataSpec& s, const Graph& m, const std::string&) -> std::unique_ptr<Dataset> {
      return std::make_unique<ImageFolder>(s, m);
    }}));

}  // namespace edgeforge
