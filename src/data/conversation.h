// The phase-3 conversation layout (docs/spec.md section 7, phase 3), as the original's instruction dataset
// builds it: `<image>`, then for every turn " USER: " + message or " ASSISTANT: " + message (the message
// with every "<image>" removed and surrounding whitespace stripped), each turn tokenized on its own; one
// EOS at the end. Labels: the assistant turns' tokens and the final EOS; everything else is ignored.
// The whole sequence is then cut to max_seq_len (which may cut an assistant turn or drop the EOS).
// Training (`tinyvlm instruct`), evaluation and chat prompts all format turns through these functions.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tv {

namespace tok {
class Tokenizer;
}

struct ConversationTurn {
  bool user = true;     // the original: 'human' occurs in the turn's "from" field; anything else is the assistant
  std::string message;  // the raw "value"
};

struct ConversationFormat {
  int32_t image_id = 32000, eos_id = 2, pad_id = 3;
  int64_t max_seq_len = 512;  // instruct_max_seq_len: <image> and EOS included
};

// Reads </s> and <pad> from the tokenizer (as caption_format does: <image> = vocab_size, <pad> falls back to 0).
ConversationFormat conversation_format(const tok::Tokenizer& tokenizer, int64_t vocab_size, int64_t max_seq_len,
                                       const std::string& tokenizer_name);

// Whether a turn's "from" marks the user: the original's `'human' in turn['from']`.
bool is_user_role(const std::string& from);
// message.replace("<image>", "").strip() (Python's str.strip: Unicode whitespace at both ends).
std::string clean_message(const std::string& message);
// " USER: " + clean_message(message) or " ASSISTANT: " + clean_message(message).
std::string turn_text(bool user, const std::string& message);
// The tokens of one turn, tokenized on its own.
std::vector<int32_t> encode_turn(const tok::Tokenizer& tokenizer, bool user, const std::string& message);

struct FormattedConversation {
  std::vector<int32_t> ids, labels;  // same length <= max_seq_len; labels[t] is the target of ids[t]
  bool truncated = false;
  int64_t labelled() const;           // labels that are not ignored
};
FormattedConversation format_conversation(const tok::Tokenizer& tokenizer, const std::vector<ConversationTurn>& turns,
                                          const ConversationFormat& f);
// The same from turns already tokenized (turn_tokens[i] = encode_turn of turns[i]), for batch tokenization.
FormattedConversation assemble_conversation(const std::vector<ConversationTurn>& turns,
                                            const std::vector<std::vector<int32_t>>& turn_tokens,
                                            const ConversationFormat& f);

}  // namespace tv
