#include "model/chat_prompt.h"

#include "tokenizer/bpe.h"

namespace tv {

std::vector<int32_t> encode_question_prompt(const tok::Tokenizer& tk, const std::string& question) {
  return tk.encode(" USER: " + question + " ASSISTANT:");
}

std::string clean_chat_message(const std::string& msg) {
  std::string s = msg;
  for (size_t at; (at = s.find("<image>")) != std::string::npos;) s.erase(at, 7);
  // Python's str.strip() with no argument: ASCII whitespace and the other Unicode spaces; the ASCII
  // ones (and the separators 0x1c-0x1f it also strips) are what a terminal line holds.
  auto space = [](unsigned char c) { return c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f); };
  size_t b = 0, e = s.size();
  while (b < e && space(s[b])) ++b;
  while (e > b && space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

std::vector<int32_t> encode_chat_turn(const tok::Tokenizer& tk, const ChatTurn& turn) {
  return tk.encode(std::string(turn.user ? " USER: " : " ASSISTANT: ") + clean_chat_message(turn.text));
}

std::vector<int32_t> encode_answer_cue(const tok::Tokenizer& tk) { return tk.encode(" ASSISTANT:"); }

}  // namespace tv
