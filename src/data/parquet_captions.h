// Image-caption data from Parquet (HuggingFace layouts such as jxie/coco_captions): an image column (a struct
// {bytes, path}, or a list of them: the first is used) and a caption column (a string, or a list of strings:
// one sample per caption). Read one row group at a time. The encoded images are written once to a folder,
// named by their content (identical images share one file, so repeated rows of one image are one image), and
// the samples refer to those files: decoding, the feature cache and the skipping and counting of unreadable
// images then work exactly as for image folders.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "data/captions.h"

namespace tv {

struct ParquetCaptionOptions {
  std::string image_column;    // empty: the `huggingface` metadata's Image feature (or the one {bytes, path} struct)
  std::string caption_column;  // empty: the first of caption, captions, sentences, text that exists
  std::string extract_dir;     // where the images go; empty: "tinyvlm_images" beside the first file
};

// Writes encoded image `bytes` once into `dir` as <content hash>-<size><.jpg|.png|.img> (kept when a file of that
// name and size is there) and returns its path. Also used by the instruct loader (data/instruct_data.cpp).
std::string extract_parquet_image(const std::string& dir, std::string_view bytes);

CaptionSet load_parquet_captions(const std::vector<std::string>& files, const ParquetCaptionOptions& opt);

}  // namespace tv
