#include "data/demo_corpus.h"

#include <array>

#include "core/rng.h"

namespace tv {
namespace {

const std::vector<std::string> kNames = {"Mia", "Tom", "Lily", "Ben", "Sara", "Max", "Anna", "Leo", "Emma", "Sam"};
const std::vector<std::string> kColors = {"red", "blue", "green", "yellow", "purple", "orange", "white", "black"};
const std::vector<std::string> kShapes = {"circle", "square", "triangle", "star", "heart"};
const std::vector<std::string> kToys = {"ball", "kite", "boat", "car", "doll", "drum", "book", "hat"};
const std::vector<std::string> kAnimals = {"dog", "cat", "bird", "frog", "duck", "fox", "rabbit", "horse"};
const std::vector<std::string> kPlaces = {"park", "garden", "beach", "forest", "school", "river", "farm", "hill"};
const std::vector<std::string> kSizes = {"small", "big", "tiny", "huge"};
const std::vector<std::string> kFeelings = {"happy", "sad", "tired", "excited", "scared", "proud"};
const std::vector<std::string> kWeather = {"sunny", "rainy", "windy", "cold", "warm"};

struct Picker {
  Rng& rng;
  const std::string& operator()(const std::vector<std::string>& v) { return v[rng.below(v.size())]; }
};

std::string he_she(const std::string& name) {
  static const std::array<const char*, 5> girls = {"Mia", "Lily", "Sara", "Anna", "Emma"};
  for (const char* g : girls)
    if (name == g) return "she";
  return "he";
}

std::string cap(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = char(s[0] - 'a' + 'A');
  return s;
}

std::string story(Rng& rng) {
  Picker pick{rng};
  std::string name = pick(kNames), friend_name = pick(kNames), color = pick(kColors), toy = pick(kToys);
  std::string animal = pick(kAnimals), place = pick(kPlaces), size = pick(kSizes), feel = pick(kFeelings);
  std::string weather = pick(kWeather), pron = he_she(name);
  switch (rng.below(5)) {
    case 0:
      return name + " had a " + color + " " + toy + ". " + cap(pron) + " took the " + toy + " to the " + place +
             ". At the " + place + ", " + name + " saw a " + size + " " + animal + ". The " + animal +
             " wanted to play with the " + toy + ". " + name + " and the " + animal + " played until the sun went down. " +
             name + " was " + feel + ".";
    case 1:
      return "It was a " + weather + " day. " + name + " and " + friend_name + " went to the " + place +
             ". They found a " + color + " " + toy + " under a tree. \"Is it yours?\" asked " + friend_name + ". \"No,\" said " +
             name + ". They gave the " + toy + " to a " + size + " " + animal + ", and everyone was " + feel + ".";
    case 2:
      return "Once upon a time, there was a " + size + " " + animal + " who lived near the " + place + ". The " +
             animal + " loved " + color + " things. One day it found a " + color + " " + toy + ". The " + animal +
             " was so " + feel + " that it showed the " + toy + " to " + name + ".";
    case 3: {
      std::string c2 = pick(kColors), shape = pick(kShapes), shape2 = pick(kShapes);
      return "The picture shows a " + color + " " + shape + " next to a " + c2 + " " + shape2 + ". The " + shape +
             " is " + size + ". " + name + " likes the " + color + " " + shape + " best.";
    }
    default:
      return name + " wanted to fly a " + color + " kite, but the day was not windy. " + cap(pron) + " waited at the " +
             place + ". Then the wind came, and the kite went up high. " + name + " felt " + feel + ".";
  }
}

}  // namespace

std::vector<std::string> demo_documents(int64_t count, uint64_t seed) {
  Rng rng(seed);
  std::vector<std::string> docs;
  docs.reserve(size_t(count));
  for (int64_t i = 0; i < count; ++i) {
    std::string d = story(rng);
    if (rng.below(3) == 0) {
      d += ' ';
      d += story(rng);
    }
    docs.push_back(std::move(d));
  }
  return docs;
}

}  // namespace tv
