// Text for HTML pages: escaping and base64 (for data: URLs).
#pragma once
#include <string>
#include <string_view>

namespace tv::report {

// Escapes & < > " ' for element text and attribute values alike; control characters other than tab,
// newline and carriage return (which no page should show raw) become U+FFFD.
std::string html_escape(std::string_view s);

// Standard base64 (RFC 4648, with padding).
std::string base64_encode(std::string_view bytes);

// "data:<mime>;base64,..." for an <img src>.
std::string data_url(std::string_view mime, std::string_view bytes);

}  // namespace tv::report
