"""Seeded English sentence generator for the demo model's synthetic speech.

A small template grammar over a vocabulary of a few hundred words: numbers, years, dates, days,
months, times of day, prices, phone numbers, colors, common nouns, verbs, adjectives, names and
cities. Text is lowercase words over a-z separated by single spaces, exactly what espeak-ng is told
to say and what the model must write back.

Words that sound like another word of the vocabulary in a way no template context separates
("ate", "won", "blew", "knew", "their", "hour", "read", "flour", ...) are left out, so that a
transcript is determined by its audio plus context. ("to" / "two" and "for" / "four" stay: the
templates put them in different places.)

    gen = SentenceGenerator(seed)
    gen.sentence()          # one sentence
    vocabulary()            # every word the templates can produce (sorted)
"""

import random

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
        "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
ORDINAL_ONES = ["", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
                "ninth", "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth",
                "sixteenth", "seventeenth", "eighteenth", "nineteenth"]
ORDINAL_TENS = {2: "twentieth", 3: "thirtieth"}
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december"]
COLORS = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple", "pink", "brown",
          "gray", "silver", "golden"]
NAMES = ["john", "mary", "peter", "anna", "david", "sarah", "michael", "emma", "james", "laura",
         "robert", "lisa", "thomas", "kate", "daniel", "sophie", "oliver", "lucy", "henry", "alice"]
PEOPLE = ["mother", "father", "sister", "brother", "friend", "teacher", "doctor", "neighbor",
          "cousin", "manager", "driver", "uncle", "boss", "dentist", "grandmother", "grandfather"]
CITIES = ["london", "paris", "berlin", "boston", "madrid", "tokyo", "chicago", "denver", "dublin",
          "seattle", "toronto", "sydney", "rome", "vienna", "oslo", "lisbon", "prague", "miami"]
PLACES = ["kitchen", "garden", "office", "school", "station", "airport", "library", "hospital",
          "market", "park", "bank", "museum", "hotel", "restaurant", "bakery", "church", "garage",
          "cinema", "beach", "shop"]
# (singular, plural)
NOUNS = [("apple", "apples"), ("book", "books"), ("car", "cars"), ("chair", "chairs"),
         ("table", "tables"), ("house", "houses"), ("dog", "dogs"), ("cat", "cats"),
         ("window", "windows"), ("door", "doors"), ("phone", "phones"), ("ticket", "tickets"),
         ("letter", "letters"), ("box", "boxes"), ("bag", "bags"), ("cup", "cups"),
         ("bottle", "bottles"), ("key", "keys"), ("shirt", "shirts"), ("shoe", "shoes"),
         ("hat", "hats"), ("bird", "birds"), ("tree", "trees"), ("lamp", "lamps"),
         ("pencil", "pencils"), ("bike", "bikes"), ("boat", "boats"), ("cake", "cakes"),
         ("egg", "eggs"), ("banana", "bananas"), ("glass", "glasses"), ("plate", "plates"),
         ("coat", "coats"), ("umbrella", "umbrellas"), ("camera", "cameras"),
         ("computer", "computers"), ("picture", "pictures"), ("sandwich", "sandwiches"),
         ("horse", "horses"), ("child", "children"), ("knife", "knives"), ("mouse", "mice"),
         ("blanket", "blankets"), ("candle", "candles"), ("jacket", "jackets"),
         ("basket", "baskets"), ("pillow", "pillows"), ("guitar", "guitars"),
         ("bucket", "buckets"), ("map", "maps")]
# (base, past)
VERBS = [("buy", "bought"), ("bring", "brought"), ("find", "found"), ("take", "took"),
         ("sell", "sold"), ("paint", "painted"), ("carry", "carried"), ("move", "moved"),
         ("clean", "cleaned"), ("wash", "washed"), ("fix", "fixed"), ("order", "ordered"),
         ("check", "checked"), ("send", "sent"), ("borrow", "borrowed"), ("count", "counted"),
         ("hide", "hid"), ("keep", "kept"), ("lose", "lost"), ("return", "returned"),
         ("share", "shared"), ("drop", "dropped"), ("open", "opened"), ("close", "closed")]
ADJECTIVES = ["big", "small", "old", "new", "heavy", "cheap", "expensive", "clean", "dirty",
              "broken", "empty", "tall", "short", "long", "warm", "cold", "quiet", "beautiful",
              "strange", "lovely", "tiny", "huge", "wooden", "plastic", "modern", "simple"]
WEATHER = ["sunny", "rainy", "cloudy", "windy", "snowy", "foggy", "stormy"]
DAY_PARTS = ["morning", "afternoon", "evening"]
EVENTS = ["meeting", "party", "concert", "wedding", "appointment", "interview", "exam", "game",
          "lesson", "trip"]
CURRENCIES = ["dollars", "euros", "pounds"]
RELATIVE_DAYS = ["today", "tomorrow", "yesterday"]
PREPOSITIONS = ["near", "under", "behind", "next to", "inside", "outside", "in front of"]
SUBJECTS = ["i", "we", "you", "they", "he", "she"]
PLURAL_SUBJECTS = ["i", "we", "you", "they"]


def number_words(n: int, rng: random.Random) -> str:
    """0..999999 as words; hundreds take an optional "and" (both styles are spoken as written)."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        head = ONES[n // 100] + " hundred"
        if n % 100 == 0:
            return head
        return head + (" and " if rng.random() < 0.5 else " ") + number_words(n % 100, rng)
    head = number_words(n // 1000, rng) + " thousand"
    if n % 1000 == 0:
        return head
    rest = n % 1000
    joiner = " and " if rest < 100 and rng.random() < 0.5 else " "
    return head + joiner + number_words(rest, rng)


def ordinal_words(n: int) -> str:
    """1..31 as an ordinal."""
    if n < 20:
        return ORDINAL_ONES[n]
    if n % 10 == 0:
        return ORDINAL_TENS[n // 10]
    return TENS[n // 10] + " " + ORDINAL_ONES[n % 10]


def year_words(year: int, rng: random.Random) -> str:
    if 2000 <= year < 2010:
        return "two thousand" + (" and " if rng.random() < 0.5 else " ") + ONES[year - 2000] \
            if year > 2000 else "two thousand"
    hi, lo = divmod(year, 100)
    if lo == 0:
        return number_words(hi, rng) + " hundred"
    if lo < 10:
        return number_words(hi, rng) + " oh " + ONES[lo]
    return number_words(hi, rng) + " " + number_words(lo, rng)


class SentenceGenerator:
    """Sentences from templates; `sentence()` draws one with this generator's own random state."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.templates = [getattr(self, name) for name in sorted(dir(self)) if name.startswith("t_")]

    # -- slot fillers --------------------------------------------------------------------------
    def pick(self, seq):
        return self.rng.choice(seq)

    def count_phrase(self):
        """'three green apples', 'a big dog', 'twenty one boxes'."""
        r = self.rng
        noun, plural = self.pick(NOUNS)
        mod = r.random()
        adj = self.pick(COLORS) if mod < 0.4 else self.pick(ADJECTIVES) if mod < 0.7 else ""
        n = r.choice([1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 20]) if r.random() < 0.8 \
            else r.randint(2, 999)
        if n == 1:
            head = "one" if r.random() < 0.3 else ("an" if (adj or noun)[0] in "aeiou" else "a")
            return " ".join(w for w in (head, adj, noun) if w)
        return " ".join(w for w in (number_words(n, r), adj, plural) if w)

    def the_thing(self):
        r = self.rng
        noun, _ = self.pick(NOUNS)
        adj = self.pick(COLORS + ADJECTIVES) if r.random() < 0.6 else ""
        return " ".join(w for w in ("the", adj, noun) if w)

    def person(self):
        r = self.rng
        if r.random() < 0.55:
            return self.pick(NAMES)
        return self.pick(["my", "your", "our", "his", "her", "the"]) + " " + self.pick(PEOPLE)

    def date(self):
        r = self.rng
        month = self.pick(MONTHS)
        day = ordinal_words(r.randint(1, 31 if month != "february" else 28))
        form = r.random()
        if form < 0.4:
            s = f"the {day} of {month}"
        elif form < 0.7:
            s = f"{month} {day}"
        else:
            s = f"{self.pick(DAYS)} the {day} of {month}"
        if r.random() < 0.3:
            s += " " + year_words(r.randint(1950, 2039), r)
        return s

    def clock_time(self):
        r = self.rng
        h = r.randint(1, 12)
        form = r.random()
        if form < 0.35:
            m = r.choice([5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55])
            s = f"{ONES[h]} {number_words(m, r)}"
        elif form < 0.5:
            s = f"{ONES[h]} oh {ONES[r.randint(1, 9)]}"
        elif form < 0.65:
            s = f"half past {ONES[h]}"
        elif form < 0.8:
            s = f"a quarter {self.pick(['past', 'to'])} {ONES[h]}"
        elif form < 0.9:
            s = self.pick(["noon", "midnight"])
            return s
        else:
            s = ONES[h]
        if r.random() < 0.4:
            s += " in the " + self.pick(DAY_PARTS)
        return s

    def when(self):
        r = self.rng
        form = r.random()
        if form < 0.3:
            return "on " + self.pick(DAYS)
        if form < 0.5:
            return self.pick(RELATIVE_DAYS)
        if form < 0.7:
            return "on " + self.date()
        if form < 0.85:
            return "next " + self.pick(DAYS + ["week", "month", "year"])
        return "at " + self.clock_time()

    def digits(self, n):
        return " ".join(ONES[self.rng.randint(0, 9)] for _ in range(n))

    def price(self):
        r = self.rng
        s = number_words(r.randint(1, 999), r) + " " + self.pick(CURRENCIES)
        if r.random() < 0.4:
            s += " and " + number_words(r.randint(1, 99), r) + " cents"
        return s

    # -- templates (every method named t_* is one) ----------------------------------------------
    def t_buy(self):
        v, past = self.pick(VERBS)
        if self.rng.random() < 0.5:
            return f"{self.person()} {past} {self.count_phrase()} {self.when()}"
        return f"{self.pick(SUBJECTS)} will {v} {self.count_phrase()} {self.when()}"

    def t_event_date(self):
        return f"the {self.pick(EVENTS)} is {self.when()}"

    def t_please(self):
        v, _ = self.pick(VERBS)
        return f"please {v} {self.the_thing()} to the {self.pick(PLACES)}"

    def t_born(self):
        return f"{self.person()} was born on {self.date()}"

    def t_call_me(self):
        return f"call me at {self.clock_time()}"

    def t_there_are(self):
        where = self.pick(PREPOSITIONS) + " the " + self.pick(PLACES)
        return f"there are {self.count_phrase()} {where}"

    def t_need(self):
        return f"{self.pick(PLURAL_SUBJECTS)} need {self.count_phrase()} and {self.count_phrase()}"

    def t_went(self):
        return f"{self.person()} and {self.person()} went to {self.pick(CITIES)} {self.when()}"

    def t_train(self):
        kind = self.pick(["train", "bus", "flight", "boat"])
        return f"the {kind} to {self.pick(CITIES)} leaves at {self.clock_time()}"

    def t_costs(self):
        return f"{self.the_thing()} costs {self.price()}"

    def t_turn(self):
        side = self.pick(["left", "right"])
        return f"turn {side} at the {self.pick(COLORS)} {self.pick(PLACES)}"

    def t_phone(self):
        who = self.pick(["my", "your", "her", "his", "our"])
        what = self.pick(["phone number", "room number", "code", "ticket number"])
        return f"{who} {what} is {self.digits(self.rng.randint(3, 8))}"

    def t_weather(self):
        return f"it will be {self.pick(WEATHER)} in {self.pick(CITIES)} {self.when()}"

    def t_is_adj(self):
        r = self.rng
        thing = self.the_thing()
        if r.random() < 0.5:
            return f"{thing} is very {self.pick(ADJECTIVES)}"
        return f"is {thing} {self.pick(ADJECTIVES)} or {self.pick(ADJECTIVES)}"

    def t_where(self):
        return f"{self.the_thing()} is {self.pick(PREPOSITIONS)} the {self.pick(PLACES)}"

    def t_temperature(self):
        n = number_words(self.rng.randint(0, 40), self.rng)
        sign = "minus " if self.rng.random() < 0.2 else ""
        return f"the temperature {self.when()} is {sign}{n} degrees"

    def t_count(self):
        return f"{self.pick(SUBJECTS)} counted {number_words(self.rng.randint(0, 99999), self.rng)} " \
               f"{self.pick(NOUNS)[1]}"

    def t_meet(self):
        return f"let us meet at the {self.pick(PLACES)} at {self.clock_time()} {self.when()}"

    def t_year(self):
        return f"{self.person()} moved to {self.pick(CITIES)} in " \
               f"{year_words(self.rng.randint(1950, 2039), self.rng)}"

    def t_have(self):
        return f"{self.person()} has {self.count_phrase()} in the {self.pick(PLACES)}"

    def t_like(self):
        noun, _ = self.pick(NOUNS)
        return f"{self.pick(PLURAL_SUBJECTS)} like the {self.pick(COLORS)} {noun} more than the " \
               f"{self.pick(COLORS)} one"

    def t_bring(self):
        return f"can you bring {self.count_phrase()} for the {self.pick(EVENTS)} {self.when()}"

    def t_days(self):
        a, b = self.rng.sample(DAYS, 2)
        return f"the {self.pick(PLACES)} is open from {a} to {b}"

    def t_list(self):
        return f"{self.pick(COLORS)} {self.pick(COLORS)} and {self.pick(COLORS)} are " \
               f"{self.pick(['my', 'her', 'his', 'our'])} favorite colors"

    def t_short(self):
        r = self.rng
        form = r.random()
        if form < 0.3:
            return self.date()
        if form < 0.5:
            return self.pick(DAYS) + " " + self.pick(DAY_PARTS)
        if form < 0.7:
            return number_words(r.randint(0, 999999), r)
        if form < 0.85:
            return self.count_phrase()
        return f"{self.pick(['good', 'see you'])} {self.pick(['morning', 'evening', 'tomorrow'])}"

    def sentence(self) -> str:
        return " ".join(self.pick(self.templates)().split())


def vocabulary(samples: int = 200000, seed: int = 0) -> list:
    """Every word seen in `samples` generated sentences (an estimate of the grammar's words)."""
    gen = SentenceGenerator(seed)
    words = set()
    for _ in range(samples):
        words.update(gen.sentence().split())
    return sorted(words)


if __name__ == "__main__":
    g = SentenceGenerator(1)
    for _ in range(30):
        print(g.sentence())
    v = vocabulary(50000)
    print(len(v), "words")
