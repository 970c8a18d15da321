// The inference side of the phase-3 conversation format (docs/spec.md sections 7 and 8): what `ask` and
// `chat` feed the decoder after the image. The turns come from training's own formatter
// (src/data/conversation.*), so both stay one format.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tv {

namespace tok {
class Tokenizer;
}

// `ask`: encode(" USER: " + question + " ASSISTANT:"), the ids after <image> (section 8).
std::vector<int32_t> encode_question_prompt(const tok::Tokenizer& tk, const std::string& question);

struct ChatTurn {
  bool user = true;  // else the assistant
  std::string text;
};

// One turn as training formats it: " USER: " + msg or " ASSISTANT: " + msg, tokenized on its own, with
// <image> removed from msg and msg stripped of surrounding whitespace (section 7).
std::vector<int32_t> encode_chat_turn(const tok::Tokenizer& tk, const ChatTurn& turn);
// What precedes an answer: encode(" ASSISTANT:"), as the ask prompt ends.
std::vector<int32_t> encode_answer_cue(const tok::Tokenizer& tk);
// The message as training keeps it: <image> removed, then stripped as Python's str.strip() does.
std::string clean_chat_message(const std::string& msg);

}  // namespace tv
