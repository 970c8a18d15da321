// libFuzzer harness for the Parquet reader: any bytes as a file, opened and read in full (every row group,
// every top-level field assembled into rows, the HuggingFace accessors (texts, images, messages) on each value). tv::Error is the
// expected outcome for damaged input; a crash, a read outside the buffer (ASan) or runaway memory is a bug.
// Seeds: fuzz/corpus/parquet/ (small files from scripts/fixtures/parquet_fixtures.py).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "io/parquet.h"
#include "io/parquet_rows.h"

namespace {

void touch(const tv::pq::Value& v, size_t& sink) {
  sink += v.bytes.size() + size_t(v.i);
  for (const tv::pq::Value& x : v.items) touch(x, sink);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The reader maps files, so the input goes through one (in memory-backed /dev/shm when there is one).
  static const std::string path = [] {
    const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    return std::string(dir) + "/tinyvlm_fuzz_parquet_" + std::to_string(getpid()) + ".parquet";
  }();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  size_t sink = 0;
  try {
    tv::pq::ParquetFile file(path);
    sink += file.schema_text().size();
    for (const std::string& name : tv::pq::image_fields(file)) sink += name.size();
    for (int g = 0; g < file.num_row_groups(); ++g) {
      for (int c : file.nodes()[0].children) {
        const std::string& name = file.nodes()[size_t(c)].element->name;
        tv::pq::FieldValues fv = tv::pq::read_field(file, g, name);
        for (const tv::pq::Value& v : fv.rows) {
          touch(v, sink);
          try {
            sink += tv::pq::as_texts(v, "fuzz").size();
          } catch (const tv::Error&) {
          }
          try {
            sink += tv::pq::as_images(v, "fuzz").size();
          } catch (const tv::Error&) {
          }
          try {
            for (const tv::pq::Message& m : tv::pq::as_messages(v, "fuzz")) sink += m.text.size() + size_t(m.images);
          } catch (const tv::Error&) {
          }
        }
      }
    }
  } catch (const tv::Error&) {
  }
  std::remove(path.c_str());  // leaves nothing behind in /dev/shm
  if (sink == 1) std::fputc(' ', stderr);  // keeps the reads from being optimised away
  return 0;
}
