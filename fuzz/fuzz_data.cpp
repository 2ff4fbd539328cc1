// Fuzz target: the data readers. The first byte picks the reader; the rest is the file:
//   0 gzip'd IDX images (read_idx_pair, against the fixture's good label file)
//   1 gzip'd IDX labels (read_idx_pair, against the fixture's good image file)
//   2 .npy (parse_npy)       3 .npz (read_npz)       4 an image (decode: JPEG, PNG)
//   5 JSON lines (read_jsonl) 6 CSV (read_csv)       7 a SpamAssassin mail JSON (load_spam)
//   8 a raw mail (clean_mail_text)
// Seeds: fuzz/corpus/data, made from tests/data/fixtures by scripts/fuzz.
#include <filesystem>

#include "../src/data/image_io.h"
#include "../src/data/npy.h"
#include "../src/data/text_records.h"
#include "edgeforge/data.h"
#include "fuzz_util.h"

using namespace edgeforge;
namespace fs = std::filesystem;

namespace {
std::string fixtures() {
  const char* dir = std::getenv("EDGEFORGE_FUZZ_FIXTURES");
  return dir != nullptr ? dir : EDGEFORGE_FUZZ_FIXTURES;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string bytes = fuzz::bytes_of(data + 1, size - 1);
  const std::string good = fixtures() + "/fashion-mnist/train-";
  fuzz::refused_or_ok([&] {
    switch (data[0] % 9) {
      case 0: (void)read_idx_pair(fuzz::scratch_file(bytes, ".gz"), good + "labels-idx1-ubyte.gz"); break;
      case 1: (void)read_idx_pair(good + "images-idx3-ubyte.gz", fuzz::scratch_file(bytes, ".gz")); break;
      case 2: (void)parse_npy(bytes, "fuzz.npy"); break;
      case 3: (void)read_npz(fuzz::scratch_file(bytes, ".npz")); break;
      case 4: (void)image::decode(bytes, "fuzz image"); break;
      case 5: (void)data::read_jsonl(fuzz::scratch_file(bytes, ".jsonl"), data::TextColumns{}); break;
      case 6: (void)data::read_csv(fuzz::scratch_file(bytes, ".csv"), data::TextColumns{}, ','); break;
      case 7: {
        const fs::path dir = fs::temp_directory_path() / ("edgeforge-fuzz-spam-" + std::to_string(getpid()));
        fs::create_directories(dir / "spam-1");
        const std::string name = "00001.9c9a1d9e2e4e0d6f2f2d7f8e5c0c4b1a.json";
        fs::copy_file(fuzz::scratch_file(bytes, ".json"), dir / "spam-1" / name,
                      fs::copy_options::overwrite_existing);
        SpamOptions o;
        o.dir = dir.string();
        for (const char* split : {"train", "validation", "test"}) (void)load_spam(split, o);
        break;
      }
      default: (void)clean_mail_text(bytes, 2000); break;
    }
  });
  return 0;
}
