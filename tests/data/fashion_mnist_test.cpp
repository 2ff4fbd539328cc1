// Tests of the Fashion-MNIST loader (src/data/fashion_mnist.cpp) on the fixtures written by
// tests/data/make_fixtures.py, plus one check of the real data when it is installed.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "data_test_util.h"
#include "edgeforge/data.h"
#include "edgeforge/error.h"

using namespace edgeforge;

using namespace edgeforge::test_util;

namespace {

const std::string kGood = kFixtures + "/fashion-mnist";
const std::string kBad = kFixtures + "/fashion-bad";
const std::string kRealDir = kFashionMnistPackageDir;

FashionMnistOptions fixture_opts() {
  FashionMnistOptions o;
  o.dir = kGood;
  return o;
}

// The fixture writes pixel (r,c) of image i as (i*31 + r*7 + c*3) % 256, so pixel (0,0) tells
// the image's index in its file (31 is odd, so i*31 mod 256 is distinct for i < 256).
int64_t file_index(const at::Tensor& images, int64_t row) {
  const int64_t p = images[row][0][0].item<uint8_t>();
  for (int64_t i = 0; i < 256; ++i)
    if ((i * 31) % 256 == p) return i;
  return -1;
}

std::vector<int64_t> file_indices(const ImageSet& s) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < s.images.size(0); ++i) out.push_back(file_index(s.images, i));
  return out;
}

}  // namespace

TEST(FashionMnist, TestSplitReadsT10kExactly) {
  ImageSet s = load_fashion_mnist("test", fixture_opts());
  ASSERT_EQ(s.images.sizes(), (std::vector<int64_t>{12, 28, 28}));
  EXPECT_EQ(s.images.scalar_type(), at::kByte);
  ASSERT_EQ(s.labels.sizes(), (std::vector<int64_t>{12}));
  EXPECT_EQ(s.labels.scalar_type(), at::kLong);
  ASSERT_EQ(s.class_names.size(), 10u);
  EXPECT_EQ(s.class_names[0], "T-shirt/top");
  EXPECT_EQ(s.class_names[9], "Ankle boot");
  for (int64_t i = 0; i < 12; ++i) {
    EXPECT_EQ(s.labels[i].item<int64_t>(), (i * 3) % 10);
    EXPECT_EQ(s.images[i][5][9].item<uint8_t>(), (i * 31 + 5 * 7 + 9 * 3) % 256);
  }
}

TEST(FashionMnist, TrainAndValidationPartitionTheTrainFile) {
  ImageSet train = load_fashion_mnist("train", fixture_opts());
  ImageSet val = load_fashion_mnist("validation", fixture_opts());
  // 36 images: 36 / 12 = 3 held out.
  ASSERT_EQ(train.images.size(0), 33);
  ASSERT_EQ(val.images.size(0), 3);
  std::vector<int64_t> t = file_indices(train);
  std::vector<int64_t> v = file_indices(val);
  EXPECT_TRUE(std::is_sorted(t.begin(), t.end()));
  EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
  std::set<int64_t> all(t.begin(), t.end());
  all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), 36u);  // disjoint and covering
  EXPECT_EQ(*all.begin(), 0);
  EXPECT_EQ(*all.rbegin(), 35);
  // Labels travel with their images: the fixture's train label of image i is i % 10.
  for (int64_t i = 0; i < train.labels.size(0); ++i)
    EXPECT_EQ(train.labels[i].item<int64_t>(), t[static_cast<size_t>(i)] % 10);
}

TEST(FashionMnist, SplitIsTheSameOnEveryLoad) {
  ImageSet a = load_fashion_mnist("validation", fixture_opts());
  ImageSet b = load_fashion_mnist("validation", fixture_opts());
  EXPECT_TRUE(at::equal(a.images, b.images));
  EXPECT_TRUE(at::equal(a.labels, b.labels));
}

TEST(FashionMnist, LimitKeepsTheFirstItemsOfTheSplit) {
  FashionMnistOptions o = fixture_opts();
  ImageSet all = load_fashion_mnist("train", o);
  o.limit = 5;
  ImageSet few = load_fashion_mnist("train", o);
  ASSERT_EQ(few.images.size(0), 5);
  EXPECT_TRUE(at::equal(few.images, all.images.narrow(0, 0, 5)));
  EXPECT_TRUE(at::equal(few.labels, all.labels.narrow(0, 0, 5)));
  o.limit = 1000;
  EXPECT_EQ(load_fashion_mnist("train", o).images.size(0), 33);
  o.limit = 0;  // the whole split, as everywhere in edgeforge
  EXPECT_EQ(load_fashion_mnist("train", o).images.size(0), 33);
  o.limit = -1;
  EXPECT_THROW(load_fashion_mnist("train", o), Error);
}

TEST(FashionMnist, ReadIdxPairReadsAnyPair) {
  ImageSet s = read_idx_pair(kGood + "/train-images-idx3-ubyte.gz",
                             kGood + "/train-labels-idx1-ubyte.gz");
  EXPECT_EQ(s.images.size(0), 36);
  EXPECT_EQ(s.labels[35].item<int64_t>(), 5);
}

TEST(FashionMnist, NormalizeImagesUsesTheTrainStatistics) {
  at::Tensor u8 = at::zeros({2, 28, 28}, at::kByte);
  u8[1].fill_(255);
  at::Tensor x = normalize_images(u8);
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{2, 1, 28, 28}));
  EXPECT_EQ(x.scalar_type(), at::kFloat);
  EXPECT_NEAR(x[0][0][3][3].item<float>(), -kFashionMnistMean / kFashionMnistStd, 1e-5);
  EXPECT_NEAR(x[1][0][3][3].item<float>(), (1.0 - kFashionMnistMean) / kFashionMnistStd, 1e-5);
  EXPECT_THROW(normalize_images(at::zeros({2, 28, 28}, at::kFloat)), Error);
}

TEST(FashionMnist, MissingFolderSaysWhichPackageToInstall) {
  FashionMnistOptions o;
  o.dir = kFixtures + "/no-such-folder";
  expect_error_names(error_of([&] { load_fashion_mnist("train", o); }), o.dir,
                     "install the Debian package dataset-fashion-mnist");
}

TEST(FashionMnist, MissingFileIsNamed) {
  FashionMnistOptions o;
  o.dir = kFixtures + "/fashion-partial";
  expect_error_names(error_of([&] { load_fashion_mnist("test", o); }),
                     o.dir + "/t10k-images-idx3-ubyte.gz", "dataset-fashion-mnist");
}

TEST(FashionMnist, UnknownSplitIsRejected) {
  expect_error_names(error_of([&] { load_fashion_mnist("dev", fixture_opts()); }), "'dev'",
                     "expected train, validation or test");
}

TEST(FashionMnist, NotGzipIsRejected) {
  const std::string f = kBad + "/not-gzip-images-idx3-ubyte.gz";
  expect_error_names(error_of([&] { read_idx_pair(f, kGood + "/train-labels-idx1-ubyte.gz"); }),
                     f, "not gzip");
}

TEST(FashionMnist, TruncatedGzipIsRejected) {
  const std::string f = kBad + "/truncated-images-idx3-ubyte.gz";
  expect_error_names(error_of([&] { read_idx_pair(f, kGood + "/train-labels-idx1-ubyte.gz"); }),
                     f, "corrupt or truncated gzip");
}

TEST(FashionMnist, WrongMagicIsRejected) {
  const std::string f = kBad + "/bad-magic-images-idx3-ubyte.gz";
  expect_error_names(error_of([&] { read_idx_pair(f, kGood + "/train-labels-idx1-ubyte.gz"); }),
                     f, "magic 0x00000804, expected 0x00000803");
  // A label file given as the image file is caught by the same check.
  const std::string labels = kGood + "/train-labels-idx1-ubyte.gz";
  expect_error_names(error_of([&] { read_idx_pair(labels, labels); }), labels, "magic");
}

TEST(FashionMnist, FewerBytesThanTheHeaderSaysIsTruncated) {
  const std::string f = kBad + "/short-images-idx3-ubyte.gz";
  expect_error_names(error_of([&] { read_idx_pair(f, kGood + "/train-labels-idx1-ubyte.gz"); }),
                     f, "(truncated)");
}

TEST(FashionMnist, ImageAndLabelCountsMustMatch) {
  const std::string f = kBad + "/count-35-labels-idx1-ubyte.gz";
  expect_error_names(error_of([&] { read_idx_pair(kGood + "/train-images-idx3-ubyte.gz", f); }),
                     f, "36 images but");
}

TEST(FashionMnist, LabelOutsideZeroToNineIsRejected) {
  const std::string f = kBad + "/bad-value-labels-idx1-ubyte.gz";
  expect_error_names(error_of([&] { read_idx_pair(kGood + "/train-images-idx3-ubyte.gz", f); }),
                     f, "item 5 has label 10, expected 0..9");
}

TEST(FashionMnistReal, SizesAndPixelStatistics) {
  if (!std::filesystem::exists(kRealDir + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST is not installed in " << kRealDir
                 << " (Debian package dataset-fashion-mnist)";
  ImageSet train = load_fashion_mnist("train");
  ImageSet val = load_fashion_mnist("validation");
  ImageSet test = load_fashion_mnist("test");
  EXPECT_EQ(train.images.size(0), 55000);
  EXPECT_EQ(val.images.size(0), 5000);
  EXPECT_EQ(test.images.size(0), 10000);
  // A hashed hold-out keeps the classes balanced: 500 each on average.
  at::Tensor per_class = at::bincount(val.labels, {}, 10);
  EXPECT_GT(per_class.min().item<int64_t>(), 400);
  EXPECT_LT(per_class.max().item<int64_t>(), 600);
  // The constants in data.h are the statistics of this very split.
  at::Tensor x = train.images.to(at::kDouble) / 255.0;
  EXPECT_NEAR(x.mean().item<double>(), kFashionMnistMean, 5e-5);
  EXPECT_NEAR(x.std(/*unbiased=*/false).item<double>(), kFashionMnistStd, 5e-5);
}

// A gzip bomb (issue 22): the header is read and checked before the data is inflated, and no
// more than the header promises is inflated, so 64 MB of zeros (or 4 GB) behind 36 images are a
// one-line error after inflating 28 kB, not an allocation of the whole stream.
TEST(FashionMnist, DataBeyondWhatTheHeaderPromisesIsNeverInflated) {
  const std::string labels = kGood + "/train-labels-idx1-ubyte.gz";
  const std::string bomb = kBad + "/bomb-images-idx3-ubyte.gz";
  expect_error_names(error_of([&] { read_idx_pair(bomb, labels); }), bomb, "(trailing bytes)");
  const std::string huge = kBad + "/huge-header-images-idx3-ubyte.gz";
  expect_error_names(error_of([&] { read_idx_pair(huge, labels); }), huge,
                     "more than 1073741824 bytes of data (the limit)");
}
