// Caption files: COCO captions JSON and JSONL ({"image", "caption"}), whichever the input looks like.
#include <cstdint>

#include "core/error.h"
#include "data/captions.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The first byte picks the file name the reader sees (it decides the format by it).
  if (size == 0) return 0;
  const char* suffix = (data[0] & 1) ? ".jsonl" : ".json";
  const std::string path = tv::fuzz::input_file(data + 1, size - 1, suffix);
  try {
    tv::CaptionSet set = tv::load_captions(path, "images");
    tv::CaptionSet train, val;
    tv::split_by_image(set, 0.2, train, val);
  } catch (const tv::Error&) {
  }
  return 0;
}
