// npy.h: NumPy .npy files and .npz archives, the storage of the "raw tensors" data-set kind (one
// .npy per model input, or one .npz with one array per input, plus labels).
//
//   NpyArray ids = read_npy("data/input_ids.npy");        // e.g. int64 [N,128]
//   if (ids.dtype != "int64") ...;
//   const int64_t n = ids.shape[0];
//   std::map<std::string, NpyArray> inputs = read_npz("data/inputs.npz");
//   const NpyArray& pixels = inputs.at("pixel_values");    // keys as numpy.load gives them
//   write_npy("out/logits.npy", logits);
//
// Arrays are handed over as plain bytes (C order, little-endian) so the loader can wrap them in
// whatever tensor type it uses; this header needs only the standard library. Bad input (missing
// file, corrupt or hostile bytes, object/structured/string/complex dtypes) throws
// edgeforge::Error with a one-line message naming the file and the problem.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace edgeforge {

struct NpyArray {
  // "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
  // "uint32", "uint64" or "bool" (one byte, 0 or 1).
  std::string dtype;
  std::vector<int64_t> shape;  // empty for a scalar
  std::string data;            // C order, little-endian, itemsize() * numel() bytes

  // Both throw Error on an unknown dtype or a shape that is negative or overflows int64.
  int64_t numel() const;
  int64_t itemsize() const;
};

// Reads a .npy file of format 1.0, 2.0 or 3.0; big-endian and Fortran-order data come back as
// little-endian C order.
NpyArray read_npy(const std::string& path);

// The same from bytes in memory; `what` names their origin in messages, e.g. "npy file 'x.npy'".
NpyArray parse_npy(const std::string& bytes, const std::string& what);

// Reads every member of an .npz archive (np.savez or np.savez_compressed, zip64 included), keyed
// by member name without ".npy". A member that is not a .npy file is refused.
std::map<std::string, NpyArray> read_npz(const std::string& path);

// Writes `array` with the header numpy's np.save writes for it (format 1.0, 2.0 only when the
// header does not fit 1.0), so a file numpy saved is reproduced byte for byte.
void write_npy(const std::string& path, const NpyArray& array);
// The bytes write_npy writes; `what` names the array in errors.
std::string npy_bytes(const NpyArray& array, const std::string& what);

}  // namespace edgeforge
