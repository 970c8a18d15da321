// A small synthetic image-caption set for tests and the CPU demo: PNG images of coloured shapes on coloured
// backgrounds, each with captions that describe them ("a red circle on a blue background"), so a projector
// has something real to align. Deterministic for a seed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

namespace tv {

// Writes an 8-bit RGB PNG (libpng). Errors name the file.
void write_png_rgb(const std::string& path, const ImageU8& rgb);

struct SyntheticCaptionSet {
  std::string captions;  // JSONL {"image": "<name>.png", "caption": [...]} (paths relative to the folder)
  std::vector<std::string> images;
  std::vector<std::string> texts;  // every caption, in file order (e.g. for training a tokenizer)
};

// n_images PNGs of size x size pixels and captions.jsonl in `dir` (created). Every image gets
// captions_per_image captions.
SyntheticCaptionSet make_synthetic_captions(const std::string& dir, int n_images, int size = 64,
                                            int captions_per_image = 2, uint64_t seed = 1);

}  // namespace tv
