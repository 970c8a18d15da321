#include "model/chat_prompt.h"

#include "data/conversation.h"
#include "tokenizer/bpe.h"

namespace tv {

std::vector<int32_t> encode_question_prompt(const tok::Tokenizer& tk, const std::string& question) {
  return tk.encode(" USER: " + question + " ASSISTANT:");
}

// Training's formatter (data/conversation) makes the turns, so chat and phase 3 cannot drift apart.
std::string clean_chat_message(const std::string& msg) { return clean_message(msg); }

std::vector<int32_t> encode_chat_turn(const tok::Tokenizer& tk, const ChatTurn& turn) {
  return encode_turn(tk, turn.user, turn.text);
}

std::vector<int32_t> encode_answer_cue(const tok::Tokenizer& tk) { return tk.encode(" ASSISTANT:"); }

}  // namespace tv
