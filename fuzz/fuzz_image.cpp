// JPEG and PNG decoding (libjpeg-turbo, libpng behind our checks), then the preprocessing pipeline on a
// small target size so that one input stays fast.
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "data/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    tv::ImageU8 img = tv::decode_image_memory(data, size, "fuzz-image");
    std::vector<float> out(3 * 16 * 16);
    tv::preprocess_to_chw(img, out.data(), 18, 16);
  } catch (const tv::Error&) {
  }
  return 0;
}
