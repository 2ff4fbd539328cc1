// Tests of the .npy/.npz reader and writer (src/data/npy.cpp) on the fixtures written by
// tests/data/make_npy_fixtures.py, whose docstring gives the value formulas recomputed here.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <type_traits>

#include "../../src/data/npy.h"
#include "edgeforge/error.h"

using namespace edgeforge;

namespace {

const std::string kGood = EDGEFORGE_TEST_DATA_DIR "/fixtures/npy/good/";
const std::string kBad = EDGEFORGE_TEST_DATA_DIR "/fixtures/npy/bad/";

const std::vector<std::string> kDtypes = {"float16", "float32", "float64", "int8",
                                          "int16",   "int32",   "int64",   "uint8",
                                          "uint16",  "uint32",  "uint64",  "bool"};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void spill(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "npy_test_" + name;
}

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Expects a one-line message that names `file` and contains `problem`.
void expect_error_names(const std::string& message, const std::string& file,
                        const std::string& problem) {
  EXPECT_NE(message.find(file), std::string::npos) << message;
  EXPECT_NE(message.find(problem), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

// The tests run on little-endian hosts, where NpyArray::data is in host order.
template <typename T>
std::vector<T> elements(const NpyArray& a) {
  EXPECT_EQ(static_cast<int64_t>(sizeof(T)), a.itemsize()) << a.dtype;
  std::vector<T> out(a.data.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), a.data.data(), out.size() * sizeof(T));
  return out;
}

double half_to_double(uint16_t h) {
  const int exponent = (h >> 10) & 0x1f;
  const int mantissa = h & 0x3ff;
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (exponent == 0) return sign * std::ldexp(mantissa, -24);
  return sign * std::ldexp(1024 + mantissa, exponent - 25);
}

template <typename T>
std::vector<T> formula_ints() {
  using L = std::numeric_limits<T>;
  if constexpr (std::is_signed_v<T>) return {L::min(), T(-1), T(0), T(1), T(42), L::max()};
  return {T(0), T(1), T(2), T(42), T(L::max() - 1), L::max()};
}

std::vector<double> formula_floats() {
  std::vector<double> v;
  for (int i = 0; i < 6; ++i) v.push_back((i - 2) * 0.75);
  return v;
}

// The six values make_npy_fixtures.py writes for `a.dtype` (see its docstring).
void expect_formula_values(const NpyArray& a, const std::string& where) {
  SCOPED_TRACE(where);
  ASSERT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  ASSERT_EQ(a.numel(), 6);
  ASSERT_EQ(static_cast<int64_t>(a.data.size()), 6 * a.itemsize());
  const std::string& d = a.dtype;
  if (d == "float16") {
    std::vector<double> got;
    for (uint16_t h : elements<uint16_t>(a)) got.push_back(half_to_double(h));
    EXPECT_EQ(got, formula_floats());
  } else if (d == "float32") {
    const std::vector<float> got = elements<float>(a);
    EXPECT_EQ(std::vector<double>(got.begin(), got.end()), formula_floats());
  } else if (d == "float64") {
    EXPECT_EQ(elements<double>(a), formula_floats());
  } else if (d == "int8") {
    EXPECT_EQ(elements<int8_t>(a), formula_ints<int8_t>());
  } else if (d == "int16") {
    EXPECT_EQ(elements<int16_t>(a), formula_ints<int16_t>());
  } else if (d == "int32") {
    EXPECT_EQ(elements<int32_t>(a), formula_ints<int32_t>());
  } else if (d == "int64") {
    EXPECT_EQ(elements<int64_t>(a), formula_ints<int64_t>());
  } else if (d == "uint8") {
    EXPECT_EQ(elements<uint8_t>(a), formula_ints<uint8_t>());
  } else if (d == "uint16") {
    EXPECT_EQ(elements<uint16_t>(a), formula_ints<uint16_t>());
  } else if (d == "uint32") {
    EXPECT_EQ(elements<uint32_t>(a), formula_ints<uint32_t>());
  } else if (d == "uint64") {
    EXPECT_EQ(elements<uint64_t>(a), formula_ints<uint64_t>());
  } else if (d == "bool") {
    EXPECT_EQ(elements<uint8_t>(a), (std::vector<uint8_t>{1, 0, 1, 0, 1, 0}));
  } else {
    ADD_FAILURE() << "unexpected dtype " << d;
  }
}

template <typename T>
std::vector<T> iota_of(int n, double scale = 1.0, double offset = 0.0) {
  std::vector<T> v;
  for (int i = 0; i < n; ++i) v.push_back(static_cast<T>(offset + i * scale));
  return v;
}

bool multi_byte(const std::string& dtype) {
  return dtype != "int8" && dtype != "uint8" && dtype != "bool";
}

// ---------------------------------------------------------------------------------------------
// Reading

TEST(NpyRead, EveryDtype) {
  for (const std::string& dtype : kDtypes) {
    const NpyArray a = read_npy(kGood + "dtype_" + dtype + ".npy");
    EXPECT_EQ(a.dtype, dtype);
    expect_formula_values(a, dtype);
  }
}

TEST(NpyRead, BigEndianIsSwappedToLittleEndian) {
  int files = 0;
  for (const std::string& dtype : kDtypes) {
    if (!multi_byte(dtype)) continue;
    const NpyArray a = read_npy(kGood + "be_" + dtype + ".npy");
    EXPECT_EQ(a.dtype, dtype);
    expect_formula_values(a, "be_" + dtype);
    ++files;
  }
  EXPECT_EQ(files, 9);
}

TEST(NpyRead, ScalarEmptyAndVector) {
  const NpyArray scalar = read_npy(kGood + "scalar_float64.npy");
  EXPECT_EQ(scalar.dtype, "float64");
  EXPECT_TRUE(scalar.shape.empty());
  EXPECT_EQ(scalar.numel(), 1);
  EXPECT_EQ(elements<double>(scalar), std::vector<double>{3.5});

  const NpyArray empty = read_npy(kGood + "empty_float32.npy");
  EXPECT_EQ(empty.dtype, "float32");
  EXPECT_EQ(empty.shape, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(empty.numel(), 0);
  EXPECT_TRUE(empty.data.empty());

  const NpyArray vector = read_npy(kGood + "vector_int64.npy");
  EXPECT_EQ(vector.shape, std::vector<int64_t>{5});
  EXPECT_EQ(elements<int64_t>(vector), iota_of<int64_t>(5));
}

TEST(NpyRead, FortranOrderIsTransposedToCOrder) {
  const NpyArray a = read_npy(kGood + "fortran_int32.npy");
  EXPECT_EQ(a.dtype, "int32");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(elements<int32_t>(a), iota_of<int32_t>(24));

  const NpyArray b = read_npy(kGood + "fortran_be_float64.npy");
  EXPECT_EQ(b.dtype, "float64");
  EXPECT_EQ(b.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(elements<double>(b), iota_of<double>(6));
}

TEST(NpyRead, FormatVersions2And3) {
  expect_formula_values(read_npy(kGood + "v2_float32.npy"), "v2");
  expect_formula_values(read_npy(kGood + "v3_int16.npy"), "v3");
  EXPECT_EQ(slurp(kGood + "v2_float32.npy")[6], 2);
  EXPECT_EQ(slurp(kGood + "v3_int16.npy")[6], 3);
}

TEST(NpyRead, NativeOrderAndLegacyHeader) {
  const NpyArray native = read_npy(kGood + "native_int32.npy");
  EXPECT_EQ(native.dtype, "int32");
  EXPECT_EQ(elements<int32_t>(native), iota_of<int32_t>(6));
  // Double quotes, keys out of order and Python 2's "2L": all still the literal numpy reads.
  expect_formula_values(read_npy(kGood + "legacy_int16.npy"), "legacy");
}

TEST(NpyRead, ParseFromMemoryNamesTheSource) {
  const std::string bytes = slurp(kGood + "dtype_int8.npy");
  expect_formula_values(parse_npy(bytes, "bytes of x"), "memory");
  expect_error_names(error_of([&] { parse_npy(bytes.substr(0, 20), "bytes of x"); }),
                     "bytes of x", "runs past the end");
}

TEST(NpyRead, MissingFileIsNamed) {
  const std::string path = kGood + "no_such_file.npy";
  expect_error_names(error_of([&] { read_npy(path); }), path, "not found");
  expect_error_names(error_of([&] { read_npy(kGood); }), kGood, "not found");
}

// ---------------------------------------------------------------------------------------------
// .npz

void expect_npz_contents(const std::map<std::string, NpyArray>& arrays) {
  std::set<std::string> keys;
  for (const auto& entry : arrays) keys.insert(entry.first);
  EXPECT_EQ(keys, (std::set<std::string>{"arr_0", "attention_mask", "input_ids", "labels",
                                         "pixel_values"}));
  if (keys.size() != 5) return;

  const NpyArray& arr0 = arrays.at("arr_0");
  EXPECT_EQ(arr0.dtype, "int16");
  EXPECT_EQ(elements<int16_t>(arr0), iota_of<int16_t>(3));

  const NpyArray& ids = arrays.at("input_ids");
  EXPECT_EQ(ids.dtype, "int64");
  EXPECT_EQ(ids.shape, (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(elements<int64_t>(ids), iota_of<int64_t>(32, 1.0, 100.0));

  const NpyArray& mask = arrays.at("attention_mask");
  EXPECT_EQ(mask.shape, (std::vector<int64_t>{4, 8}));
  std::vector<int64_t> want_mask;
  for (int i = 0; i < 32; ++i) want_mask.push_back(i % 8 < 5 ? 1 : 0);
  EXPECT_EQ(elements<int64_t>(mask), want_mask);

  const NpyArray& pixels = arrays.at("pixel_values");
  EXPECT_EQ(pixels.dtype, "float32");
  EXPECT_EQ(pixels.shape, (std::vector<int64_t>{4, 3, 2, 2}));
  EXPECT_EQ(elements<float>(pixels), iota_of<float>(48, 0.25));

  const NpyArray& labels = arrays.at("labels");
  EXPECT_EQ(labels.shape, std::vector<int64_t>{4});
  EXPECT_EQ(elements<int64_t>(labels), (std::vector<int64_t>{0, 1, 0, 1}));
}

TEST(Npz, SavezStored) { expect_npz_contents(read_npz(kGood + "inputs.npz")); }

TEST(Npz, SavezCompressed) { expect_npz_contents(read_npz(kGood + "inputs_compressed.npz")); }

TEST(Npz, MissingFileIsNamed) {
  const std::string path = kGood + "no_such_file.npz";
  expect_error_names(error_of([&] { read_npz(path); }), path, "not found");
}

// ---------------------------------------------------------------------------------------------
// Writing

TEST(NpyWrite, ReproducesNumpyBytes) {
  std::vector<std::string> files;
  for (const std::string& dtype : kDtypes) files.push_back("dtype_" + dtype + ".npy");
  for (const char* f : {"scalar_float64.npy", "empty_float32.npy", "vector_int64.npy"})
    files.push_back(f);
  const std::string out = temp_path("same.npy");
  for (const std::string& f : files) {
    write_npy(out, read_npy(kGood + f));
    EXPECT_EQ(slurp(out), slurp(kGood + f)) << f;
  }
}

TEST(NpyWrite, RoundTripsWhatItReads) {
  const std::string out = temp_path("round_trip.npy");
  for (const char* f : {"be_float64.npy", "be_uint16.npy", "fortran_int32.npy",
                        "fortran_be_float64.npy", "v2_float32.npy", "v3_int16.npy",
                        "native_int32.npy", "legacy_int16.npy"}) {
    const NpyArray a = read_npy(kGood + f);
    write_npy(out, a);
    const std::string bytes = slurp(out);
    EXPECT_EQ(bytes[6], 1) << f;  // always format 1.0 when it fits
    const NpyArray b = read_npy(out);
    EXPECT_EQ(b.dtype, a.dtype) << f;
    EXPECT_EQ(b.shape, a.shape) << f;
    EXPECT_EQ(b.data, a.data) << f;
  }
  // The C-order little-endian rewrite of a numpy file equals numpy's own C-order file.
  write_npy(out, read_npy(kGood + "be_int32.npy"));
  EXPECT_EQ(slurp(out), slurp(kGood + "dtype_int32.npy"));
}

TEST(NpyWrite, HeaderTooLongForVersion1UsesVersion2) {
  NpyArray a;
  a.dtype = "uint8";
  a.shape.assign(30000, 1);  // "1, " * 30000 does not fit a 2-byte header length
  a.data = "\x07";
  const std::string out = temp_path("v2.npy");
  write_npy(out, a);
  const std::string bytes = slurp(out);
  EXPECT_EQ(bytes[6], 2);
  EXPECT_EQ(bytes[7], 0);
  EXPECT_EQ(bytes.size() % 64, 1u);  // header aligned to 64 bytes, then one data byte
  const NpyArray b = read_npy(out);
  EXPECT_EQ(b.shape, a.shape);
  EXPECT_EQ(b.data, a.data);
}

TEST(NpyWrite, RefusalsNameTheFile) {
  const std::string out = temp_path("refused.npy");
  NpyArray a;
  a.dtype = "complex64";
  a.shape = {2};
  expect_error_names(error_of([&] { write_npy(out, a); }), out, "cannot write dtype");
  a.dtype = "int32";
  a.data = std::string(7, '\0');
  expect_error_names(error_of([&] { write_npy(out, a); }), out, "needs 8");
  a.shape = {-2};
  expect_error_names(error_of([&] { write_npy(out, a); }), out, "negative dimension");
  a.shape = {int64_t{1} << 62, 4};
  expect_error_names(error_of([&] { write_npy(out, a); }), out, "overflows int64");
  a.shape = {2};
  a.data = std::string(8, '\0');
  const std::string unwritable = temp_path("no_such_dir/x.npy");
  expect_error_names(error_of([&] { write_npy(unwritable, a); }), unwritable,
                     "cannot open for writing");
}

TEST(NpyArray, NumelAndItemsize) {
  NpyArray a;
  a.dtype = "float16";
  EXPECT_EQ(a.numel(), 1);
  EXPECT_EQ(a.itemsize(), 2);
  a.shape = {3, 0, 5};
  EXPECT_EQ(a.numel(), 0);
  a.shape = {3, 4};
  EXPECT_EQ(a.numel(), 12);
  a.dtype = "float128";
  EXPECT_NE(error_of([&] { a.itemsize(); }).find("unknown dtype 'float128'"), std::string::npos);
  a.shape = {-1};
  EXPECT_NE(error_of([&] { a.numel(); }).find("negative"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Refusals: each names the file and the problem on one line.

TEST(NpyRefusal, EachBadFile) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"object.npy", "object arrays"},
      {"structured.npy", "structured dtypes"},
      {"unicode.npy", "string dtypes"},
      {"bytes.npy", "string dtypes"},
      {"complex.npy", "complex dtypes"},
      {"datetime.npy", "datetime dtypes"},
      {"float128.npy", "dtype '<f16' is not supported"},
      {"bad_magic.npy", "not a .npy file"},
      {"text.npy", "not a .npy file"},
      {"empty.npy", "not a .npy file"},
      {"version4.npy", "unsupported .npy format version 4.0"},
      {"header_call.npy", "header is not the dict literal numpy writes"},
      {"header_expression.npy", "header is not the dict literal numpy writes"},
      {"header_no_comma.npy", "trailing comma"},
      {"header_extra_key.npy", "unexpected key 'x'"},
      {"header_missing_shape.npy", "no 'shape' key"},
      {"header_duplicate_key.npy", "key 'descr' twice"},
      {"header_trailing_text.npy", "unexpected text after the dict"},
      {"header_bad_bool.npy", "True or False"},
      {"header_past_end.npy", "runs past the end"},
      {"negative_dim.npy", "negative dimension"},
      {"huge_dim.npy", "overflows int64"},
      {"product_overflow.npy", "overflows int64 bytes"},
      {"exceeds_file.npy", "data section is shorter"},
      {"short_data.npy", "data section is shorter"},
      {"long_data.npy", "data section is longer"},
      {"bool_byte.npy", "bool element 2 is the byte 2"},
  };
  for (const auto& [file, problem] : cases) {
    const std::string path = kBad + file;
    expect_error_names(error_of([&] { read_npy(path); }), path, problem);
  }
}

TEST(NpzRefusal, EachBadArchive) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not_npy_member.npz", "member 'notes.txt' is not a .npy file"},
      {"bad_member.npz", "member 'labels.npy': not a .npy file"},
      {"not_zip.npz", "not a readable zip archive"},
      {"truncated.npz", "not a readable zip archive"},
      {"crc.npz", "member 'input_ids.npy': cannot decompress (CRC error)"},
  };
  for (const auto& [file, problem] : cases) {
    const std::string path = kBad + file;
    expect_error_names(error_of([&] { read_npz(path); }), path, problem);
  }
}

// ---------------------------------------------------------------------------------------------
// Hostile input: deterministic mutations of valid files must give an array or an Error, never a
// crash, a hang or another exception.

uint64_t splitmix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

size_t pick(uint64_t* state, size_t n) { return n ? splitmix64(state) % n : 0; }

std::string mutate_npy(std::string s, uint64_t* rng) {
  // The header is where the parser works hardest, so most edits aim there.
  const size_t header_end = std::min<size_t>(s.size(), 128);
  static const std::string kChars = std::string("0123456789-(),:'\" {}[]LTFx<>|=?fiubOcUV\n\t\\") +
                                    '\0' + "\x93\xff";
  static const std::vector<std::string> kNumbers = {
      "0", "-1", "99999999999999999999", "4294967296", "9223372036854775807", "1L", "3, 5",
      "1e3", ""};
  switch (pick(rng, 9)) {
    case 0:
      s.resize(pick(rng, s.size()));
      break;
    case 1:
      for (size_t n = 1 + pick(rng, 4); n > 0 && !s.empty(); --n)
        s[pick(rng, s.size())] ^= static_cast<char>(1 + pick(rng, 255));
      break;
    case 2:
      if (header_end > 8) s[8 + pick(rng, header_end - 8)] = kChars[pick(rng, kChars.size())];
      break;
    case 3:
      if (header_end > 10) s.insert(10 + pick(rng, header_end - 10), 1, kChars[pick(rng, kChars.size())]);
      break;
    case 4:
      if (header_end > 10) s.erase(10 + pick(rng, header_end - 10), 1 + pick(rng, 4));
      break;
    case 5:
      if (s.size() > 9) {
        s[8] = static_cast<char>(pick(rng, 256));
        s[9] = static_cast<char>(pick(rng, 256));
      }
      break;
    case 6: {
      const size_t paren = s.find('(');
      if (paren != std::string::npos) s.insert(paren + 1, kNumbers[pick(rng, kNumbers.size())]);
      break;
    }
    case 7:
      for (size_t n = 1 + pick(rng, 16); n > 0; --n) s += static_cast<char>(pick(rng, 256));
      break;
    default:
      if (s.size() > header_end) s[header_end + pick(rng, s.size() - header_end)] ^= 0x5a;
      break;
  }
  return s;
}

// Checks an accepted array's own consistency; returns false on a problem.
bool consistent(const NpyArray& a) {
  return static_cast<int64_t>(a.data.size()) == a.numel() * a.itemsize();
}

TEST(NpyFuzz, MutationsGiveAnArrayOrAnError) {
  std::vector<std::string> sources;
  for (const char* f : {"dtype_float32.npy", "dtype_bool.npy", "dtype_int64.npy", "be_uint32.npy",
                        "fortran_int32.npy", "fortran_be_float64.npy", "v2_float32.npy",
                        "v3_int16.npy", "scalar_float64.npy", "empty_float32.npy",
                        "legacy_int16.npy"})
    sources.push_back(slurp(kGood + f));
  uint64_t rng = 20240611;
  int accepted = 0, refused = 0;
  constexpr int kMutations = 500;
  for (int i = 0; i < kMutations; ++i) {
    const std::string bytes = mutate_npy(sources[pick(&rng, sources.size())], &rng);
    const std::string what = "mutant " + std::to_string(i);
    try {
      const NpyArray a = parse_npy(bytes, what);
      EXPECT_TRUE(consistent(a)) << what;
      ++accepted;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
      ++refused;
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << " threw a non-Error: " << e.what();
    }
  }
  EXPECT_EQ(accepted + refused, kMutations);
  EXPECT_GT(accepted, 0);
  EXPECT_GT(refused, kMutations / 2);
}

TEST(NpzFuzz, MutationsGiveArraysOrAnError) {
  const std::vector<std::string> sources = {slurp(kGood + "inputs.npz"),
                                            slurp(kGood + "inputs_compressed.npz")};
  const std::string path = temp_path("mutant.npz");
  uint64_t rng = 1103515245;
  int accepted = 0, refused = 0;
  constexpr int kMutations = 120;
  for (int i = 0; i < kMutations; ++i) {
    std::string s = sources[pick(&rng, sources.size())];
    switch (pick(&rng, 4)) {
      case 0:
        s.resize(pick(&rng, s.size()));
        break;
      case 1:  // the central directory and end record live in the last ~400 bytes
        for (size_t n = 1 + pick(&rng, 3); n > 0; --n)
          s[s.size() - 1 - pick(&rng, std::min<size_t>(s.size(), 400))] ^=
              static_cast<char>(1 + pick(&rng, 255));
        break;
      case 2:
        for (size_t n = 1 + pick(&rng, 3); n > 0; --n)
          s[pick(&rng, s.size())] ^= static_cast<char>(1 + pick(&rng, 255));
        break;
      default:
        for (size_t n = 1 + pick(&rng, 32); n > 0; --n) s += static_cast<char>(pick(&rng, 256));
        break;
    }
    spill(path, s);
    try {
      for (const auto& entry : read_npz(path)) EXPECT_TRUE(consistent(entry.second)) << i;
      ++accepted;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
      ++refused;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "npz mutant " << i << " threw a non-Error: " << e.what();
    }
  }
  EXPECT_EQ(accepted + refused, kMutations);
  EXPECT_GT(refused, kMutations / 2);
}

}  // namespace
