// edgeforge/data.h: the two default data sets, loaded offline with fixed, machine-independent
// splits.
//
// Images: Fashion-MNIST from the IDX .gz files of the Debian package dataset-fashion-mnist.
// Text: the SpamAssassin public corpus as fetched by scripts/setup (one JSON file per mail).
// Every split is a pure function of the files, so two machines see the same train, validation
// and test items in the same order.
//
//   ImageSet train = load_fashion_mnist("train");             // 55,000 images
//   at::Tensor x = normalize_images(train.images);            // float [N,1,28,28]
//   SpamOptions spam_opts;
//   spam_opts.limit = 100;
//   std::vector<Mail> mails = load_spam("test", spam_opts);   // the first 100 by id
//   std::string text = mails[0].text;                          // cleaned: subject, from, body
//
// Bad files (missing, corrupt, truncated, inconsistent) throw edgeforge::Error naming the file.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace edgeforge {

// ---------------------------------------------------------------------------------------------
// Fashion-MNIST

// A labelled image set.
struct ImageSet {
  at::Tensor images;                     // uint8 [N,H,W] (28x28 for Fashion-MNIST), raw pixels
  at::Tensor labels;                     // int64 [N], class index into class_names
  std::vector<std::string> class_names;  // the 10 Fashion-MNIST classes, index = label
};

// Pixel statistics of the training split (55,000 images, 43,120,000 pixels scaled to [0,1]):
// mean 0.2860883 and population standard deviation 0.3530201 (rounded below), computed over
// load_fashion_mnist("train") (and cross-checked by a Python reimplementation of the split).
// The validation images are excluded so nothing of them leaks into preprocessing. The test
// FashionMnistReal.SizesAndPixelStatistics recomputes them.
inline constexpr double kFashionMnistMean = 0.28609;
inline constexpr double kFashionMnistStd = 0.35302;
inline constexpr int64_t kFashionMnistSize = 28;  // every image is 28x28

// One in twelve images of the train file (5,000 of 60,000) forms the validation split.
inline constexpr int64_t kFashionMnistValidationDivisor = 12;

inline constexpr const char* kFashionMnistPackageDir = "/usr/share/datasets/fashion-mnist";

struct FashionMnistOptions {
  // Holds the four IDX .gz files; empty: $EDGEFORGE_FASHION_MNIST_DIR, else
  // kFashionMnistPackageDir (Debian's dataset-fashion-mnist).
  std::string dir;
  int64_t limit = 0;  // 0 keeps the whole split, else its first `limit` items
};

// Loads split "train" (train file minus validation, 55,000), "validation" (5,000 held out of the
// train file: the N/12 indices with the smallest splitmix64(index), in index order) or "test"
// (t10k file, 10,000). Items keep their file order. Throws Error naming the file on bad input.
ImageSet load_fashion_mnist(const std::string& split, const FashionMnistOptions& opts = {});

// The folder load_fashion_mnist reads: opts.dir, else $EDGEFORGE_FASHION_MNIST_DIR, else
// kFashionMnistPackageDir.
std::string fashion_mnist_dir(const FashionMnistOptions& opts = {});

// Reads one gzip'd IDX image file (magic 0x803, uint8 [N,H,W]) and its label file (magic 0x801,
// labels 0..9). Throws Error naming the file when it is missing, not gzip, corrupt, has the wrong
// magic, holds fewer or more bytes than its header says, the two counts differ, or a label is
// outside 0..9.
ImageSet read_idx_pair(const std::string& images_gz_path, const std::string& labels_gz_path);

// uint8 [N,H,W] -> float [N,1,H,W] with (x/255 - kFashionMnistMean) / kFashionMnistStd.
at::Tensor normalize_images(const at::Tensor& images_u8);

// The Fashion-MNIST class names, index = label: "T-shirt/top", "Trouser", ... "Ankle boot".
const std::vector<std::string>& fashion_mnist_class_names();

// ---------------------------------------------------------------------------------------------
// SpamAssassin

struct Mail {
  std::string id;     // the MD5 checksum value of the raw mail, e.g. "7c53336b37003a92..."
  std::string group;  // corpus folder: easy-ham-1, easy-ham-2, hard-ham-1, spam-1, spam-2
  int label = 0;      // 1 spam (group starts with "spam"), 0 ham
  std::string text;   // clean_mail_text() of the raw mail
};

struct SpamOptions {
  std::string dir;          // <dir>/<group>/*.json; empty: data_dir() + "/spam-assassin/data"
  int64_t limit = 0;        // 0 keeps the whole split, else its first `limit` mails (by id)
  size_t max_chars = 2000;  // cap on the cleaned text in bytes, cut at a UTF-8 boundary
};

// Loads split "train" (80%), "validation" (10%) or "test" (10%) of the mails, assigned by
// spam_split_of(id), sorted by (id, group). Throws Error naming the folder or file on bad input.
std::vector<Mail> load_spam(const std::string& split, const SpamOptions& opts = {});

// The folder load_spam reads: opts.dir, else data_dir() + "/spam-assassin/data".
std::string spam_dir(const SpamOptions& opts = {});

// The split a mail id lands in: FNV-1a 64 of the id, modulo 10: 0-7 "train", 8 "validation",
// 9 "test". The same on every machine, so a mail never changes split.
std::string spam_split_of(const std::string& mail_id);

// Raw mail (headers, blank line, body) -> "<subject> <from> <body>": only the Subject and From
// header values are kept; from the body, HTML tags, style/script blocks, base64 lines, MIME
// boundaries and part headers are dropped, quoted-printable soft line breaks rejoined and the
// five basic HTML entities decoded (nothing else is decoded); bytes that are not UTF-8 become
// '?', whitespace runs one space, and the result is cut to at most `max_chars` bytes at a
// UTF-8 boundary.
std::string clean_mail_text(const std::string& raw, size_t max_chars = 2000);

}  // namespace edgeforge
