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

// What an image shows: colour names, shape name, size, and the shape's centre as a fraction of the side.
struct SyntheticScene {
  std::string colour, background, shape;
  bool big = false;
  double cx = 0.5, cy = 0.5;
};

struct SyntheticCaptionSet {
  std::string captions;  // JSONL {"image": "<name>.png", "caption": [...]} (paths relative to the folder)
  std::vector<std::string> images;
  std::vector<std::string> texts;  // every caption, in file order (e.g. for training a tokenizer)
  std::vector<SyntheticScene> scenes;  // per image
};

// n_images PNGs of size x size pixels and captions.jsonl in `dir` (created). Every image gets
// captions_per_image captions.
SyntheticCaptionSet make_synthetic_captions(const std::string& dir, int n_images, int size = 64,
                                            int captions_per_image = 2, uint64_t seed = 1);

// Short conversations about the images of a caption set, for phase 3: questions on the shape's colour,
// the shape, the background colour, its size and its position (left or right), each answered in one word.
struct SyntheticQuestion {
  std::string kind;  // colour, shape, background, size, position
  std::string question, answer;
};
// The questions an image can be asked, one per kind, with its answers.
std::vector<SyntheticQuestion> synthetic_questions(const SyntheticScene& scene);
// Every turn text those conversations can hold (" USER: " + each question, " ASSISTANT: " + each answer),
// for a tokenizer to learn before the images exist.
std::vector<std::string> synthetic_conversation_texts();
struct SyntheticConversationSet {
  std::string conversations;  // JSONL {"id", "image", "conversations": [{"from": "human"|"gpt", "value"}]}
  std::vector<std::string> texts;  // every turn text
};
// Writes <dir>/conversations.jsonl for images [0, n) of `set` (names relative to dir): each image gets
// `per_image` conversations of one or two questions in a random order (the first with "<image>\n" before
// it, as LLaVA-Instruct writes it).
SyntheticConversationSet make_synthetic_conversations(const SyntheticCaptionSet& set, const std::string& dir, size_t n,
                                                      int per_image = 2, uint64_t seed = 1);

}  // namespace tv
