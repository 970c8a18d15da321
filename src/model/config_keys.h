// Every config key tinyvlm knows, in one table (config_keys.cpp): its name, the type its value must have,
// and a short meaning. A config file or `--set` naming any other key is an error with a "did you mean"
// suggestion, so a typo never silently falls back to a default. A new key is one new line in the table.
#pragma once
#include <string>
#include <vector>

namespace tv {

enum class ConfigKeyType { Int, Number, Bool, String };  // Number: an integer or a float, finite

struct ConfigKey {
  const char* name;
  ConfigKeyType type;
  const char* meaning;
};

const std::vector<ConfigKey>& config_keys();
const ConfigKey* find_config_key(const std::string& name);  // nullptr when unknown
// The known key closest to `name` (edit distance at most about a third of its length), or "".
std::string suggest_config_key(const std::string& name);
const char* config_key_type_name(ConfigKeyType t);  // "an integer", "a number", ...

}  // namespace tv
