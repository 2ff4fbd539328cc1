// npy.cpp: the .npy format (https://numpy.org/neps/nep-0001-npy-format.html) parsed by hand, and
// .npz archives read through libzip, which handles stored and deflated members, zip64 (np.savez
// always writes zip64 local headers) and CRC checks.
#include "npy.h"

#include <zip.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

#include "edgeforge/error.h"

namespace edgeforge {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
// numpy pads the header so the data starts on this boundary (memory mapping needs it).
constexpr size_t kArrayAlign = 64;
// numpy leaves spare spaces after the dict so shape[0] can grow in place to this many digits.
constexpr size_t kGrowthAxisMaxDigits = 21;
constexpr size_t kZipChunk = size_t{1} << 20;
// A member's declared size is untrusted: reserve at most this much up front, then grow as bytes
// actually arrive.
constexpr uint64_t kZipReserveMax = uint64_t{64} << 20;
constexpr size_t kEchoMax = 40;

struct DtypeInfo {
  const char* name;
  char kind;  // numpy's kind character in descr
  int64_t size;
};

constexpr DtypeInfo kDtypes[] = {
    {"float16", 'f', 2}, {"float32", 'f', 4}, {"float64", 'f', 8}, {"int8", 'i', 1},
    {"int16", 'i', 2},   {"int32", 'i', 4},   {"int64", 'i', 8},   {"uint8", 'u', 1},
    {"uint16", 'u', 2},  {"uint32", 'u', 4},  {"uint64", 'u', 8},  {"bool", 'b', 1},
};

const DtypeInfo* dtype_by_name(const std::string& name) {
  for (const DtypeInfo& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DtypeInfo* dtype_by_code(char kind, int64_t size) {
  for (const DtypeInfo& d : kDtypes)
    if (kind == d.kind && size == d.size) return &d;
  return nullptr;
}

std::string dtype_names() {
  std::string out;
  for (const DtypeInfo& d : kDtypes) out += (out.empty() ? "" : ", ") + std::string(d.name);
  return out;
}

bool host_is_little_endian() {
  const uint16_t probe = 1;
  unsigned char first = 0;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

// Input text echoed in a message: one line, bounded length.
std::string printable(const std::string& text) {
  std::string out;
  for (char c : text.substr(0, kEchoMax)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  if (text.size() > kEchoMax) out += "...";
  return out;
}

// Python's repr of the shape tuple, as numpy writes it.
std::string shape_repr(const std::vector<int64_t>& shape) {
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + (shape.size() == 1 ? ",)" : ")");
}

// Bytes of an array, refusing like numpy does when the nonzero dimensions times the item size
// overflow, even if a zero dimension makes the array empty. Dimensions must be non-negative.
bool checked_nbytes(const std::vector<int64_t>& shape, int64_t itemsize, int64_t* nbytes) {
  int64_t product = itemsize;
  bool empty = false;
  for (int64_t dim : shape) {
    if (dim == 0) {
      empty = true;
      continue;
    }
    if (__builtin_mul_overflow(product, dim, &product)) return false;
  }
  *nbytes = empty ? 0 : product;
  return true;
}

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

// A strict reader of the Python dict literal numpy writes, e.g.
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
// Keys in any order, either quote style, optional trailing commas, whitespace between tokens and
// Python 2's 'L' suffix on dimensions; nothing else (no escapes, expressions or other keys).
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& what) : text_(text), what_(what) {}

  NpyHeader parse() {
    NpyHeader header;
    std::set<std::string> seen;
    skip_space();
    expect('{');
    skip_space();
    while (!at('}')) {
      const std::string key = parse_string("a quoted key");
      EF_CHECK(seen.insert(key).second, what_, ": header has the key '", printable(key),
               "' twice");
      skip_space();
      expect(':');
      skip_space();
      if (key == "descr") {
        EF_CHECK(!at('[') && !at('('), what_,
                 ": structured dtypes are not supported (descr is a list of fields)");
        header.descr = parse_string("a quoted descr");
      } else if (key == "fortran_order") {
        header.fortran_order = parse_bool();
      } else if (key == "shape") {
        header.shape = parse_shape();
      } else {
        throw Error(detail::concat(what_, ": header has the unexpected key '", printable(key),
                                   "' (numpy writes 'descr', 'fortran_order' and 'shape')"));
      }
      skip_space();
      if (at(',')) {
        ++pos_;
        skip_space();
      } else if (!at('}')) {
        fail("expected ',' or '}'");
      }
    }
    ++pos_;
    skip_space();
    if (pos_ != text_.size()) fail("unexpected text after the dict");
    for (const char* key : {"descr", "fortran_order", "shape"})
      EF_CHECK(seen.count(key), what_, ": header has no '", key, "' key");
    return header;
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const {
    throw Error(detail::concat(what_, ": header is not the dict literal numpy writes (", problem,
                               " at header byte ", pos_, ")"));
  }

  bool at(char c) const { return pos_ < text_.size() && text_[pos_] == c; }

  void expect(char c) {
    if (!at(c)) fail(std::string("expected '") + c + "'");
    ++pos_;
  }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\r' || text_[pos_] == '\n'))
      ++pos_;
  }

  std::string parse_string(const char* expected) {
    if (!at('\'') && !at('"')) fail(std::string("expected ") + expected);
    const char quote = text_[pos_++];
    const size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      const auto u = static_cast<unsigned char>(text_[pos_]);
      if (u < 0x20 || u >= 0x7f || u == '\\') fail("unsupported character in a string");
      ++pos_;
    }
    if (pos_ == text_.size()) fail("unterminated string");
    return text_.substr(start, pos_++ - start);
  }

  bool parse_bool() {
    const size_t start = pos_;
    while (pos_ < text_.size() && std::isalpha(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    const std::string word = text_.substr(start, pos_ - start);
    if (word == "True") return true;
    if (word == "False") return false;
    pos_ = start;
    fail("expected True or False for fortran_order");
  }

  std::vector<int64_t> parse_shape() {
    std::vector<int64_t> shape;
    expect('(');
    skip_space();
    if (at(')')) {
      ++pos_;
      return shape;
    }
    for (;;) {
      shape.push_back(parse_dim());
      skip_space();
      if (at(',')) {
        ++pos_;
        skip_space();
        if (at(')')) break;
      } else if (at(')')) {
        // Python reads "(3)" as the int 3, not a tuple.
        if (shape.size() == 1) fail("a one-element shape needs a trailing comma");
        break;
      } else {
        fail("expected ',' or ')' in the shape");
      }
    }
    ++pos_;
    return shape;
  }

  int64_t parse_dim() {
    EF_CHECK(!at('-'), what_, ": shape has a negative dimension");
    const size_t start = pos_;
    int64_t value = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      EF_CHECK(!__builtin_mul_overflow(value, 10, &value) &&
                   !__builtin_add_overflow(value, text_[pos_] - '0', &value),
               what_, ": a dimension in the shape overflows int64");
      ++pos_;
    }
    if (pos_ == start) fail("expected a dimension");
    if (text_[start] == '0' && pos_ - start > 1) fail("a dimension with a leading zero");
    if (at('L')) ++pos_;
    return value;
  }

  const std::string& text_;
  const std::string& what_;
  size_t pos_ = 0;
};

struct DescrInfo {
  const DtypeInfo* dtype;
  bool big_endian;
};

DescrInfo parse_descr(const std::string& descr, const std::string& what) {
  std::string code = descr;
  char order = '=';
  if (!code.empty() && std::strchr("<>|=", code[0])) {
    order = code[0];
    code = code.substr(1);
  }
  const char kind = code.empty() ? '\0' : code[0];
  const char* refused = nullptr;
  switch (kind) {
    case 'O': refused = "object arrays (they need pickle)"; break;
    case 'S': case 'a': case 'U': refused = "string dtypes"; break;
    case 'c': refused = "complex dtypes"; break;
    case 'V': refused = "structured or void dtypes"; break;
    case 'M': case 'm': refused = "datetime dtypes"; break;
    default: break;
  }
  EF_CHECK(!refused, what, ": dtype '", printable(descr), "': ", refused, " are not supported");
  const DtypeInfo* dtype = nullptr;
  if (code == "?") {
    dtype = dtype_by_name("bool");
  } else if (code.size() >= 2 && code.size() <= 3 &&
             std::all_of(code.begin() + 1, code.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    dtype = dtype_by_code(kind, std::stoll(code.substr(1)));
  }
  EF_CHECK(dtype, what, ": dtype '", printable(descr), "' is not supported (expected one of ",
           dtype_names(), ")");
  const bool native_big = !host_is_little_endian();
  return {dtype, order == '>' || ((order == '=' || order == '|') && native_big)};
}

void byte_swap(std::string* data, int64_t itemsize) {
  const size_t step = static_cast<size_t>(itemsize);
  for (size_t i = 0; i + step <= data->size(); i += step)
    std::reverse(data->begin() + i, data->begin() + i + step);
}

// Column-major to row-major: walk the output in C order while tracking the element's offset in
// the Fortran layout, where axis k has stride shape[0] * ... * shape[k-1].
std::string fortran_to_c(const std::string& data, const std::vector<int64_t>& shape,
                         int64_t itemsize) {
  const size_t ndim = shape.size();
  const int64_t numel = static_cast<int64_t>(data.size()) / itemsize;
  if (ndim < 2 || numel == 0) return data;
  std::vector<int64_t> stride(ndim, 1);
  for (size_t k = 1; k < ndim; ++k) stride[k] = stride[k - 1] * shape[k - 1];
  std::vector<int64_t> index(ndim, 0);
  std::string out(data.size(), '\0');
  int64_t src = 0;
  for (int64_t i = 0; i < numel; ++i) {
    std::memcpy(&out[i * itemsize], &data[src * itemsize], itemsize);
    for (size_t k = ndim; k-- > 0;) {
      src += stride[k];
      if (++index[k] < shape[k]) break;
      src -= stride[k] * shape[k];
      index[k] = 0;
    }
  }
  return out;
}

bool is_regular_file(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

std::string read_file_bytes(const std::string& path, const std::string& what) {
  EF_CHECK(is_regular_file(path), what, " not found");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  EF_CHECK(in, what, ": cannot open");
  const std::streamoff size = in.tellg();
  EF_CHECK(size >= 0, what, ": cannot read its size");
  std::string bytes(static_cast<size_t>(size), '\0');
  in.seekg(0);
  in.read(bytes.data(), size);
  EF_CHECK(in.gcount() == size, what, ": read ", in.gcount(), " of its ", size, " bytes");
  return bytes;
}

struct ZipDiscard {
  void operator()(zip_t* archive) const { zip_discard(archive); }
};
struct ZipFileClose {
  void operator()(zip_file_t* file) const { zip_fclose(file); }
};

std::string read_zip_member(zip_t* archive, zip_uint64_t index, const zip_stat_t& stat,
                            const std::string& what) {
  std::unique_ptr<zip_file_t, ZipFileClose> file(zip_fopen_index(archive, index, 0));
  EF_CHECK(file, what, ": cannot open (", zip_strerror(archive), ")");
  const bool size_known = stat.valid & ZIP_STAT_SIZE;
  std::string bytes;
  if (size_known) bytes.reserve(static_cast<size_t>(std::min(stat.size, kZipReserveMax)));
  std::string chunk(kZipChunk, '\0');
  for (;;) {
    const zip_int64_t n = zip_fread(file.get(), chunk.data(), chunk.size());
    EF_CHECK(n >= 0, what, ": cannot decompress (", zip_file_strerror(file.get()), ")");
    if (n == 0) break;
    bytes.append(chunk.data(), static_cast<size_t>(n));
    EF_CHECK(!size_known || bytes.size() <= stat.size, what,
             ": holds more bytes than its directory entry says (", stat.size, ")");
  }
  EF_CHECK(!size_known || bytes.size() == stat.size, what, ": holds ", bytes.size(),
           " bytes but its directory entry says ", stat.size);
  return bytes;
}

std::string npy_header(const NpyArray& array, const DtypeInfo& dtype, const std::string& what) {
  const std::string descr =
      std::string(dtype.size == 1 ? "|" : "<") + dtype.kind + std::to_string(dtype.size);
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " +
                     shape_repr(array.shape) + ", }";
  if (!array.shape.empty()) {
    const size_t digits = std::to_string(array.shape[0]).size();
    dict.append(kGrowthAxisMaxDigits - std::min(digits, kGrowthAxisMaxDigits), ' ');
  }
  const size_t hlen = dict.size() + 1;  // + the final newline
  for (int version = 1; version <= 2; ++version) {
    const size_t len_size = version == 1 ? 2 : 4;
    const size_t padlen = kArrayAlign - (kMagicLen + 2 + len_size + hlen) % kArrayAlign;
    const uint64_t total = hlen + padlen;
    if (version == 1 && total > 0xffff) continue;
    std::string out(kMagic, kMagicLen);
    out += static_cast<char>(version);
    out += '\0';
    for (size_t i = 0; i < len_size; ++i) out += static_cast<char>((total >> (8 * i)) & 0xff);
    out += dict;
    out.append(padlen, ' ');
    out += '\n';
    return out;
  }
  throw Error(detail::concat(what, ": cannot write a header of ", hlen,
                             " bytes (format 2.0 holds at most 4 GiB)"));
}

// Takes the file's bytes by value so the data section can be cut out of them without a copy.
NpyArray parse_owned(std::string bytes, const std::string& what) {
  EF_CHECK(bytes.size() >= kMagicLen + 2 && bytes.compare(0, kMagicLen, kMagic, kMagicLen) == 0,
           what, ": not a .npy file (it does not start with the magic \\x93NUMPY)");
  const int major = static_cast<unsigned char>(bytes[kMagicLen]);
  const int minor = static_cast<unsigned char>(bytes[kMagicLen + 1]);
  EF_CHECK(major >= 1 && major <= 3 && minor == 0, what, ": unsupported .npy format version ",
           major, ".", minor, " (expected 1.0, 2.0 or 3.0)");
  // 1.0 stores the header length in 2 bytes, 2.0 in 4; 3.0 is 2.0 with a UTF-8 header, which only
  // structured field names need, so an ASCII parser serves all three.
  const size_t len_size = major == 1 ? 2 : 4;
  const size_t prefix = kMagicLen + 2 + len_size;
  EF_CHECK(bytes.size() >= prefix, what, ": ends inside the header length field");
  uint64_t header_len = 0;
  for (size_t i = 0; i < len_size; ++i)
    header_len |= uint64_t{static_cast<unsigned char>(bytes[kMagicLen + 2 + i])} << (8 * i);
  EF_CHECK(header_len <= bytes.size() - prefix, what, ": header length ", header_len,
           " runs past the end of the data (", bytes.size(), " bytes)");
  const std::string header_text = bytes.substr(prefix, header_len);
  const NpyHeader header = HeaderParser(header_text, what).parse();
  const DescrInfo descr = parse_descr(header.descr, what);

  NpyArray array;
  array.dtype = descr.dtype->name;
  array.shape = header.shape;
  int64_t nbytes = 0;
  EF_CHECK(checked_nbytes(array.shape, descr.dtype->size, &nbytes), what, ": shape ",
           shape_repr(array.shape), " of ", array.dtype, " overflows int64 bytes");
  const uint64_t have = bytes.size() - prefix - header_len;
  EF_CHECK(have == static_cast<uint64_t>(nbytes), what, ": data section is ",
           have < static_cast<uint64_t>(nbytes) ? "shorter" : "longer",
           " than the header says (", have, " bytes; shape ", shape_repr(array.shape), " of ",
           array.dtype, " needs ", nbytes, ")");

  bytes.erase(0, prefix + header_len);
  array.data = std::move(bytes);
  if (descr.big_endian && descr.dtype->size > 1) byte_swap(&array.data, descr.dtype->size);
  if (array.dtype == "bool") {
    // Downstream code may turn these into a bool tensor, where other bytes are undefined.
    for (size_t i = 0; i < array.data.size(); ++i) {
      const auto byte = static_cast<unsigned char>(array.data[i]);
      EF_CHECK(byte <= 1, what, ": bool element ", i, " is the byte ", int{byte},
               " (expected 0 or 1)");
    }
  }
  if (header.fortran_order) array.data = fortran_to_c(array.data, array.shape, descr.dtype->size);
  return array;
}

}  // namespace

int64_t NpyArray::itemsize() const {
  const DtypeInfo* info = dtype_by_name(dtype);
  EF_CHECK(info, "npy array: unknown dtype '", printable(dtype), "' (expected one of ",
           dtype_names(), ")");
  return info->size;
}

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (int64_t dim : shape) {
    EF_CHECK(dim >= 0, "npy array: shape ", shape_repr(shape), " has a negative dimension");
    EF_CHECK(!__builtin_mul_overflow(n, dim, &n), "npy array: shape ", shape_repr(shape),
             " overflows int64");
  }
  return n;
}

NpyArray parse_npy(const std::string& bytes, const std::string& what) {
  return parse_owned(bytes, what);
}

NpyArray read_npy(const std::string& path) {
  const std::string what = "npy file '" + path + "'";
  return parse_owned(read_file_bytes(path, what), what);
}

std::map<std::string, NpyArray> read_npz(const std::string& path) {
  const std::string what = "npz file '" + path + "'";
  EF_CHECK(is_regular_file(path), what, " not found");
  int code = 0;
  std::unique_ptr<zip_t, ZipDiscard> archive(zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS,
                                                      &code));
  if (!archive) {
    zip_error_t error;
    zip_error_init_with_code(&error, code);
    const std::string message = zip_error_strerror(&error);
    zip_error_fini(&error);
    throw Error(what + " is not a readable zip archive (" + message + ")");
  }
  const zip_int64_t count = zip_get_num_entries(archive.get(), 0);
  EF_CHECK(count >= 0, what, ": cannot list members (", zip_strerror(archive.get()), ")");

  std::map<std::string, NpyArray> arrays;
  for (zip_int64_t i = 0; i < count; ++i) {
    zip_stat_t stat;
    zip_stat_init(&stat);
    EF_CHECK(zip_stat_index(archive.get(), i, 0, &stat) == 0 && (stat.valid & ZIP_STAT_NAME),
             what, ": cannot read member ", i, " (", zip_strerror(archive.get()), ")");
    const std::string name = stat.name;
    const std::string member = what + " member '" + printable(name) + "'";
    const std::string suffix = ".npy";
    EF_CHECK(name.size() >= suffix.size() &&
                 name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0,
             member, " is not a .npy file (an .npz holds one .npy per array)");
    const std::string key = name.substr(0, name.size() - suffix.size());
    EF_CHECK(!arrays.count(key), member, " appears twice");
    arrays[key] = parse_owned(read_zip_member(archive.get(), i, stat, member), member);
  }
  return arrays;
}

std::string npy_bytes(const NpyArray& array, const std::string& what) {
  const DtypeInfo* dtype = dtype_by_name(array.dtype);
  EF_CHECK(dtype, what, ": cannot write dtype '", printable(array.dtype), "' (expected one of ",
           dtype_names(), ")");
  for (int64_t dim : array.shape)
    EF_CHECK(dim >= 0, what, ": cannot write shape ", shape_repr(array.shape),
             " (negative dimension)");
  int64_t nbytes = 0;
  EF_CHECK(checked_nbytes(array.shape, dtype->size, &nbytes), what, ": cannot write shape ",
           shape_repr(array.shape), " of ", array.dtype, " (overflows int64 bytes)");
  EF_CHECK(array.data.size() == static_cast<uint64_t>(nbytes), what, ": cannot write ",
           array.data.size(), " data bytes for shape ", shape_repr(array.shape), " of ",
           array.dtype, " (needs ", nbytes, ")");
  return npy_header(array, *dtype, what) + array.data;
}

void write_npy(const std::string& path, const NpyArray& array) {
  const std::string what = "npy file '" + path + "'";
  const std::string bytes = npy_bytes(array, what);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  EF_CHECK(out, what, ": cannot open for writing");
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  EF_CHECK(!out.fail(), what, ": write failed");
}

}  // namespace edgeforge
