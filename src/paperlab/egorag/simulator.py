"""A seeded life-log simulator standing in for EgoLife (no EgoLife data is available offline).

One wearer ("I", the camera) shares a house with five housemates for ``days`` days (7 by default; any
number, e.g. 365 for the latency benchmark). Waking hours 08:00-24:00 are cut into 30 s clips, ``clips_per_hour``
of them per hour (120 = every 30 s, as EgoLife; fewer = the clips are spaced out, each still 30 s long).

**What a day holds** (every clip has a *structured scene record*: place, people, activity, objects, and a
*caption* written from it with paraphrase):

- a routine of hourly blocks (breakfast, desk work, lunch, a day theme, exercise, errands, dinner, an
  evening pastime, winding down) whose captions are drawn from several phrasings per block;
- filler clips (walking down the hallway, checking the phone) -- ~15 % of clips;
- each tracked object put down once a day in a different spot, plus clips that use or mention it
  (distractors for "where did I leave ...");
- one *theme* a day (flower arranging, a hotpot party, a karaoke night ...) filling the 14:00-16:00 block,
  one *rare event* (the smoke alarm, a power cut ...) at a random moment, one or two *task requests*
  ("Alice asks me to buy batteries");
- habits: the wearer's breakfast drink, exercise and partners follow preferences with day-to-day noise.

**Questions** (:func:`make_questions`) follow the five EgoLifeQA kinds, each multiple choice (A-D) with
its evidence clips and the query time known:

=============  ==============================================================================
EntityLog      "On the day we <theme>, where did I leave the <object>?" / "Where did I last leave ...?"
EventRecall    "What was I doing when <rare event, paraphrased>?"
HabitInsight   "What do I usually drink at breakfast?", "What exercise do I usually do?"
RelationMap    "On the day we <theme>, who did I <exercise> with?"
TaskMaster     "On the day we <theme>, what did <person> ask me to do?"
=============  ==============================================================================

Questions name the day by its theme in other words than the captions use, as EgoLifeQA questions name
earlier moments by what happened then; the evidence caption itself does not mention the theme, so a
retriever must place the day from context (the paper's premise for the day -> hour summaries). Query
times are drawn so that evidence ages fall evenly into the paper's Table 6 buckets (< 2 h, 2-6 h,
6-24 h, > 24 h). Everything is a function of ``seed``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

DAY_S, HOUR_S, CLIP_S = 86400, 3600, 30
WAKE_HOURS = range(8, 24)
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
PEOPLE = ["Alice", "Katrina", "Lucia", "Shure", "Tasha"]
KINDS = ("EntityLog", "EventRecall", "HabitInsight", "RelationMap", "TaskMaster")
AGE_BUCKETS = (("<2h", 0, 2), ("2-6h", 2, 6), ("6-24h", 6, 24), (">24h", 24, 24 * 6))

# (object, verbs it takes in captions of use) -- a use clip is a distractor for "where did I leave it"
OBJECTS = {
    "scissors": ["cut open a parcel with the scissors", "trim a ribbon with the scissors"],
    "power bank": ["charge my phone from the power bank", "check the battery level on the power bank"],
    "blue mug": ["rinse the blue mug", "fill the blue mug with water"],
    "headphones": ["untangle the headphones cable", "listen to a podcast on the headphones"],
    "car keys": ["jingle the car keys in my hand", "look for the car keys in my pocket"],
    "notebook": ["jot a note in the notebook", "flip through the notebook"],
    "umbrella": ["shake water off the umbrella", "fold the umbrella"],
    "tape measure": ["measure the shelf with the tape measure", "hand the tape measure to someone"],
}
# spot: (answer text, caption phrasings)
SPOTS = {
    "desk drawer": ("in the desk drawer", ["in the drawer of my desk", "into the desk drawer"]),
    "kitchen counter": ("on the kitchen counter", ["on the counter next to the sink", "by the sink on the counter"]),
    "sofa": ("on the sofa", ["between the sofa cushions", "on the couch in the living room"]),
    "windowsill": ("on the windowsill", ["on the sill of the bedroom window", "by the window on the ledge"]),
    "backpack": ("in my backpack", ["in the front pocket of my backpack", "inside my backpack"]),
    "bookshelf": ("on the bookshelf", ["on the second shelf of the bookcase", "on top of the books on the shelf"]),
    "shoe cabinet": ("in the shoe cabinet", ["inside the cabinet by the entrance", "in the shoe rack cabinet"]),
    "dining table": ("on the dining table", ["on the big table where we eat", "at the end of the dining table"]),
}
PUT_VERBS = ["put", "leave", "set", "drop", "place", "stash", "tuck"]

# theme: (caption phrasings for the 14:00-16:00 block, question anchor, place)
THEMES = {
    "flowers": (["Katrina shows us how to trim peony stems before putting them in vases",
                 "we sort carnations and lilies into glass vases on the table",
                 "I press petals between sheets of paper for a bookmark",
                 "Katrina arranges a bouquet and asks which colours look best"],
                "we did the flower arranging", "living room"),
    "hotpot": (["we set up the hotpot pot and line up plates of sliced lamb",
                "Shure pours the spicy broth into the pot and we start boiling tofu",
                "I dip noodles into the bubbling broth",
                "everyone argues about how spicy the soup base should be"],
               "we had the hotpot meal", "kitchen"),
    "karaoke": (["Shure plugs the microphone into the speaker and picks a song",
                 "Lucia sings a ballad while I scroll the lyrics on the screen",
                 "we take turns singing pop songs in the living room",
                 "I hold the mic and hit the wrong note, everyone laughs"],
                "we sang karaoke", "living room"),
    "painting": (["we tape canvas sheets to the wall to paint a mural",
                  "Tasha mixes blue and yellow paint on a plate",
                  "I brush a sky gradient across the canvas",
                  "paint drips onto the newspaper covering the floor"],
                 "we painted the mural", "studio"),
    "baking": (["Tasha whisks eggs and sugar for a sponge cake",
                "I sift flour into the mixing bowl",
                "we wait by the oven while the cake rises",
                "Alice pipes cream onto the cooled cake"],
               "we baked the cake", "kitchen"),
    "furniture": (["we unbox the flat-pack wardrobe and lay out the panels",
                   "I read the assembly instructions while Alice holds a panel",
                   "we screw the wardrobe doors onto the hinges",
                   "Shure hammers the back board into place"],
                  "we assembled the wardrobe", "bedroom"),
    "picnic": (["we spread a checkered blanket on the grass by the lake",
                "I unpack sandwiches and fruit from the cooler bag",
                "Lucia throws a frisbee across the lawn",
                "ducks waddle close to our blanket looking for bread"],
               "we had the picnic by the lake", "park"),
    "movie": (["we draw the curtains and start a science fiction film",
               "I pass the popcorn bowl along the sofa",
               "the projector flickers and Shure adjusts the cable",
               "everyone gasps at a plot twist in the film"],
              "we watched the movie in the afternoon", "living room"),
    "pottery": (["we knead clay on the studio table to make bowls",
                 "I centre a lump of clay on the pottery wheel",
                 "Alice carves a pattern into her clay cup",
                 "we line up the wet bowls on a board to dry"],
                "we made pottery", "studio"),
    "dance": (["Lucia teaches us a dance routine in the courtyard",
               "I count the steps out loud and keep tripping",
               "we record a video of the group dance on my phone",
               "the music speaker blasts while we rehearse the moves"],
              "we rehearsed the dance", "courtyard"),
}
# rare event: (caption template with {doing}, question paraphrase)
EVENTS = [
    ("the smoke alarm suddenly starts beeping while I am {doing}", "the fire alarm went off"),
    ("the lights go out in a power cut while I am {doing}", "the electricity went out"),
    ("a courier rings the doorbell with a large parcel while I am {doing}", "the delivery man came to the door"),
    ("a neighbour's cat wanders in through the open door while I am {doing}", "a cat came into the house"),
    ("a glass vase falls off the shelf and shatters while I am {doing}", "the vase broke"),
    ("the upstairs tap leaks and water drips from the ceiling while I am {doing}", "water came through the ceiling"),
    ("a loud thunderclap shakes the windows while I am {doing}", "there was a big thunder"),
    ("Shure's drone crashes into the curtain while I am {doing}", "the drone hit the curtains"),
]
TASKS = {
    "buy batteries": ["pick up some batteries at the store", "get a pack of AA batteries"],
    "water the plants": ["water the plants on the balcony", "give the potted plants some water"],
    "book a restaurant": ["reserve a table at a restaurant for Friday", "call the restaurant to book a table"],
    "fix the lamp": ["repair the flickering lamp in the hallway", "look at the broken hallway lamp"],
    "print the poster": ["print the party poster in colour", "get the event poster printed"],
    "order a cake": ["order a birthday cake online", "place an order for a cake"],
    "return the parcel": ["send back the wrong parcel", "return the package to the courier point"],
    "clean the fridge": ["clear out the old food in the fridge", "wipe down the fridge shelves"],
}
DRINKS = ["coffee", "green tea", "orange juice", "oat milk"]
EXERCISES = {  # name: (caption phrasing with {p}, question phrasing, place)
    "jogging": ("{p} and I jog along the path around the lake", "go jogging", "park"),
    "badminton": ("{p} and I hit a shuttlecock back and forth over the net", "play badminton", "courtyard"),
    "yoga": ("{p} and I hold a stretch on our yoga mats", "do yoga", "living room"),
    "cycling": ("{p} and I ride our bikes down the riverside lane", "go cycling", "riverside"),
}
PASTIMES = {  # evening block
    "guitar": ["I strum chords on the guitar while {p} hums along", "{p} teaches me a new guitar riff"],
    "board games": ["{p} and I roll the dice in a board game", "I shuffle the cards for another round with {p}"],
    "TV series": ["{p} and I watch an episode of a cooking show", "I pause the series so {p} can grab a snack"],
    "puzzle": ["{p} and I fit pieces into the jigsaw puzzle", "I sort edge pieces of the puzzle with {p}"],
}
DOING = {  # activity label -> gerund phrase used inside event captions and as answer options
    "breakfast": "having breakfast", "desk work": "typing on my laptop", "lunch": "cooking lunch",
    "theme": "busy with the afternoon activity", "exercise": "exercising", "errands": "shopping for groceries",
    "dinner": "making dinner", "pastime": "relaxing with a game in the evening", "wind down": "reading in bed",
}
FILLER = ["I walk down the hallway", "I glance at my phone and scroll through messages", "I adjust my glasses",
          "I drink some water from a bottle", "I look out of the window for a moment", "I wash my hands at the sink",
          "I stretch my arms and yawn", "I check the time on my phone", "I open the fridge and close it again",
          "I hear footsteps upstairs", "I wipe the table with a cloth", "I tie my shoelaces"]
# optional tails that make routine captions differ from clip to clip (EgoGPT captions are never identical)
TAILS = ["while music plays in the background", "and someone laughs in the next room", "near the window",
         "as a phone buzzes on the table", "in the warm light", "while chatting about the weekend",
         "and the fan hums overhead", "as {p} walks past", "while {p} talks about work", "and then pause briefly",
         "with the door half open", "as it gets a bit noisy", "while a kettle whistles somewhere",
         "and glance at the clock", "while {p} asks about dinner plans", "as the curtains sway"]


@dataclass
class Clip:
    """One 30 s clip: times in seconds from Day 1 00:00, its caption and its structured scene record."""

    t_start: float
    t_end: float
    text: str
    scene: dict = field(default_factory=dict)

    @property
    def scene_text(self) -> str:
        """The scene record as one line of text (the 'clip feature' of Eq. 2 in the simulator)."""
        s = self.scene
        return (f"place: {s.get('place', '')}. people: {', '.join(s.get('people', [])) or 'none'}. "
                f"activity: {s.get('activity', '')}. objects: {', '.join(s.get('objects', [])) or 'none'}.")

    def record(self) -> dict:
        return {"t_start": self.t_start, "t_end": self.t_end, "text": self.text, "scene": self.scene_text}


@dataclass
class Question:
    id: str
    kind: str
    question: str
    options: list[str]
    answer: str                 # "A".."D"
    query_time: float
    evidence: list[float]       # t_start of every evidence clip
    anchored: bool              # names the day by its theme

    @property
    def age_hours(self) -> float:
        """Age of the nearest evidence clip at query time (as the paper's Table 6 buckets)."""
        return (self.query_time - max(self.evidence)) / HOUR_S

    @property
    def age_bucket(self) -> str:
        return age_bucket(self.age_hours)


def age_bucket(hours: float) -> str:
    for name, lo, hi in AGE_BUCKETS:
        if lo <= hours < hi:
            return name
    return AGE_BUCKETS[-1][0]


@dataclass
class Day:
    index: int
    theme: str
    event: int
    event_time: float
    event_doing: str
    drink: str
    exercise: str
    exercise_partner: str
    pastime: str
    pastime_partner: str
    placements: dict[str, tuple[str, float]] = field(default_factory=dict)   # object -> (spot, t)
    tasks: list[tuple[str, str, float]] = field(default_factory=list)       # (person, task, t)
    exercise_times: list[float] = field(default_factory=list)
    drink_times: list[float] = field(default_factory=list)
    uses: list[tuple[str, float]] = field(default_factory=list)                # object mentions (distractors)


@dataclass
class LifeLog:
    clips: list[Clip]
    days: list[Day]
    clips_per_hour: int
    seed: int

    @property
    def end_time(self) -> float:
        return self.clips[-1].t_end if self.clips else 0.0


def clock(t: float) -> str:
    """EgoLife-style timestamp: ``DAY3 14:05:30``."""
    d, r = divmod(int(t), DAY_S)
    return f"DAY{d + 1} {r // 3600:02d}:{r % 3600 // 60:02d}:{r % 60:02d}"


def _block(hour: int) -> str:
    return {8: "breakfast", 9: "desk work", 10: "desk work", 11: "desk work", 12: "lunch", 13: "desk work",
            14: "theme", 15: "theme", 16: "exercise", 17: "errands", 18: "dinner", 19: "dinner", 20: "pastime",
            21: "pastime", 22: "pastime", 23: "wind down"}[hour]


def _plan_day(d: int, rng: random.Random, slots: list[float]) -> Day:
    """Draw the day's theme, event, habits, and when each special clip happens (times from ``slots``)."""
    themes = list(THEMES)
    theme = themes[d % len(themes)] if d < len(themes) else rng.choice(themes)
    drink = "coffee" if rng.random() < 0.7 else rng.choice(DRINKS[1:])
    exercise = "jogging" if rng.random() < 0.6 else rng.choice(list(EXERCISES)[1:])
    pastime = rng.choice(list(PASTIMES))
    day = Day(d, theme, rng.randrange(len(EVENTS)), 0.0, "", drink, exercise, rng.choice(PEOPLE), pastime,
              rng.choice(PEOPLE))
    # special clips at distinct slots (hours 9-22), never the same clip twice
    free = [t for t in slots if 9 <= (t % DAY_S) // HOUR_S <= 22]
    rng.shuffle(free)
    day.event_time = free.pop()
    day.event_doing = _block(int(day.event_time % DAY_S // HOUR_S))
    spots = list(SPOTS)
    for obj in OBJECTS:
        day.placements[obj] = (rng.choice(spots), free.pop())
    for _ in range(rng.choice([1, 2])):
        day.tasks.append((rng.choice(PEOPLE), rng.choice(list(TASKS)), free.pop()))
    day.uses = [(obj, free.pop()) for obj in OBJECTS for _ in range(2) if free]   # distractor mentions
    return day


def _routine_caption(block: str, day: Day, rng: random.Random) -> tuple[str, dict]:
    """A routine clip of ``block``: caption and scene record."""
    p = rng.choice(PEOPLE)
    if block == "breakfast":
        if rng.random() < 0.5:
            return (rng.choice([f"I sip {day.drink} at the kitchen table", f"I pour myself a cup of {day.drink}",
                                f"I drink {day.drink} while {p} makes toast"]),
                    {"place": "kitchen", "people": [p], "activity": f"breakfast, drinking {day.drink}",
                     "objects": [day.drink]})
        return (rng.choice(["I butter a slice of toast", f"{p} fries eggs in the pan", "I peel a boiled egg"]),
                {"place": "kitchen", "people": [p], "activity": "breakfast", "objects": ["toast"]})
    if block == "desk work":
        return (rng.choice(["I type an email on my laptop", "I read a report on the laptop screen",
                            f"I join a video call and {p} waves from the next room", "I edit a spreadsheet",
                            "I scroll through a long document at my desk"]),
                {"place": "study", "people": [], "activity": "desk work", "objects": ["laptop"]})
    if block in ("lunch", "dinner"):
        dish = rng.choice(["fried rice", "tomato egg stir-fry", "dumplings", "noodle soup", "grilled fish"])
        return (rng.choice([f"{p} and I cook {dish} on the stove", f"I chop vegetables for {dish}",
                            f"we sit down to eat {dish}", f"{p} tastes the {dish} and adds salt"]),
                {"place": "kitchen", "people": [p], "activity": f"{block}, {dish}", "objects": ["wok"]})
    if block == "theme":
        text, _, place = THEMES[day.theme]
        return rng.choice(text), {"place": place, "people": PEOPLE[:3], "activity": day.theme, "objects": []}
    if block == "exercise":
        text, _, place = EXERCISES[day.exercise]
        if rng.random() < 0.6:
            return (text.format(p=day.exercise_partner),
                    {"place": place, "people": [day.exercise_partner], "activity": day.exercise, "objects": []})
        return (rng.choice(["I catch my breath and drink water", "I check my heart rate on my watch",
                            "I wipe sweat off my forehead"]),
                {"place": place, "people": [day.exercise_partner], "activity": day.exercise, "objects": []})
    if block == "errands":
        item = rng.choice(["eggs", "milk", "rice", "apples", "toilet paper", "soy sauce"])
        return (rng.choice([f"I put {item} into the shopping cart", f"{p} compares prices of {item}",
                            "I queue at the supermarket checkout"]),
                {"place": "supermarket", "people": [p], "activity": "grocery shopping", "objects": [item]})
    if block == "pastime":
        return (rng.choice(PASTIMES[day.pastime]).format(p=day.pastime_partner),
                {"place": "living room", "people": [day.pastime_partner], "activity": day.pastime, "objects": []})
    return (rng.choice(["I read a novel in bed", "I set an alarm for tomorrow", "I brush my teeth"]),
            {"place": "bedroom", "people": [], "activity": "wind down", "objects": []})


def _special_caption(kind: str, day: Day, arg, rng: random.Random, place: str) -> tuple[str, dict]:
    if kind == "place":
        obj, spot = arg
        verb = rng.choice(PUT_VERBS)
        return (f"I {verb} the {obj} {rng.choice(SPOTS[spot][1])}",
                {"place": place, "people": [], "activity": f"putting away the {obj}", "objects": [obj, spot]})
    if kind == "use":
        return (f"I {rng.choice(OBJECTS[arg])}", {"place": place, "people": [], "activity": f"using the {arg}",
                                                   "objects": [arg]})
    if kind == "task":
        person, task = arg
        return (f"{person} asks me to {rng.choice(TASKS[task])}",
                {"place": place, "people": [person], "activity": "conversation, request", "objects": []})
    return (_event_text(day),
            {"place": place, "people": [], "activity": f"incident during {day.event_doing}", "objects": []})


def _event_text(day: Day) -> str:
    return EVENTS[day.event][0].format(doing=DOING[day.event_doing])


def simulate(days: int = 7, clips_per_hour: int = 120, seed: int = 0, filler: float = 0.15,
             tails: float = 0.5) -> LifeLog:
    """The life log of ``days`` days, ``clips_per_hour`` 30 s clips per waking hour (a divisor of 120);
    ``filler``: share of idle clips; ``tails``: share of routine captions given a random trailing clause."""
    if not 1 <= clips_per_hour <= 120 or 120 % clips_per_hour:
        raise ValueError("clips_per_hour must divide 120 (30 s clips)")
    rng = random.Random(seed)
    step = HOUR_S / clips_per_hour
    clips, plans = [], []
    place_of = {"breakfast": "kitchen", "desk work": "study", "lunch": "kitchen", "dinner": "kitchen",
                "exercise": "park", "errands": "supermarket", "pastime": "living room", "wind down": "bedroom"}
    for d in range(days):
        slots = [d * DAY_S + h * HOUR_S + j * step for h in WAKE_HOURS for j in range(clips_per_hour)]
        day = _plan_day(d, rng, slots)
        plans.append(day)
        special = {day.event_time: ("event", None)}
        for obj, (spot, t) in day.placements.items():
            special[t] = ("place", (obj, spot))
        for person, task, t in day.tasks:
            special[t] = ("task", (person, task))
        for obj, t in day.uses:
            special[t] = ("use", obj)
        for t in slots:
            block = _block(int(t % DAY_S // HOUR_S))
            place = THEMES[day.theme][2] if block == "theme" else (
                EXERCISES[day.exercise][2] if block == "exercise" else place_of[block])
            if t in special:
                kind, arg = special[t]
                text, scene = _special_caption(kind, day, arg, rng, place)
            elif rng.random() < filler:
                text = rng.choice(FILLER)
                scene = {"place": place, "people": [], "activity": "idle", "objects": []}
            else:
                text, scene = _routine_caption(block, day, rng)
                if rng.random() < tails:
                    text += " " + rng.choice(TAILS).format(p=rng.choice(PEOPLE))
                if block == "exercise" and day.exercise_partner in text:
                    day.exercise_times.append(t)
                if block == "breakfast" and day.drink in text:
                    day.drink_times.append(t)
            clips.append(Clip(t, t + CLIP_S, text[0].upper() + text[1:] + ".", scene))
    return LifeLog(clips, plans, clips_per_hour, seed)


# ------------------------------------------------------------------------------------------ questions


def _options(correct: str, pool: list[str], rng: random.Random) -> tuple[list[str], str]:
    others = [x for x in dict.fromkeys(pool) if x != correct]
    rng.shuffle(others)
    opts = [correct] + others[:3]
    rng.shuffle(opts)
    return opts, "ABCD"[opts.index(correct)]


def _query_time(t_evidence: float, bucket: tuple[str, float, float], end: float, rng: random.Random) -> float | None:
    """A query time whose age relative to ``t_evidence`` falls in ``bucket`` (None: the log is too short)."""
    _, lo, hi = bucket
    hi_t = min(t_evidence + hi * HOUR_S, end)
    lo_t = t_evidence + max(lo * HOUR_S, CLIP_S)
    return rng.uniform(lo_t, hi_t) if hi_t > lo_t else None


def make_questions(log: LifeLog, per_kind: int = 20, seed: int = 0, anchored_share: float = 0.75) -> list[Question]:
    """``per_kind`` questions of each EgoLifeQA kind, ages spread evenly over the Table 6 buckets."""
    rng = random.Random(seed + 7919)
    end = log.end_time
    out: list[Question] = []
    for kind in KINDS:
        made, tries = 0, 0
        while made < per_kind and tries < per_kind * 50:
            tries += 1
            q = _one_question(kind, log, rng, AGE_BUCKETS[made % len(AGE_BUCKETS)], end, anchored_share)
            if q is not None:
                q.id = f"{kind}-{made:03d}"
                out.append(q)
                made += 1
    return out


def _anchor(day: Day) -> str:
    return THEMES[day.theme][1]


def _one_question(kind: str, log: LifeLog, rng: random.Random, bucket, end: float,
                  anchored_share: float) -> Question | None:
    days = log.days
    # themes repeat after 10 days: a question anchors only on a day whose theme is unique so far
    unique = [d for d in days if sum(x.theme == d.theme for x in days) == 1]
    if kind == "HabitInsight":
        topic = rng.choice(["drink", "exercise"])
        first = 2 if bucket[0] != ">24h" else 0
        d = rng.choice(days[first:]) if len(days) > first else None
        if d is None:
            return None
        times = d.drink_times if topic == "drink" else d.exercise_times
        if not times:
            return None
        qt = _query_time(max(times), bucket, end, rng)
        if qt is None:
            return None
        past = [x for x in days if x.index * DAY_S < qt]
        if len(past) < 3:
            return None
        if topic == "drink":
            ev = [t for x in past for t in x.drink_times if t < qt]
            pool, text, done_hour = DRINKS, "What do I usually drink at breakfast?", 9
        else:
            ev = [t for x in past for t in x.exercise_times if t < qt]
            pool, text, done_hour = list(EXERCISES), "What kind of exercise do I usually do in the afternoon?", 17
        # the habit is the most frequent choice so far, which may differ from the preferred one
        counts = {}
        for x in past:
            if x.index * DAY_S + done_hour * HOUR_S < qt:
                v = x.drink if topic == "drink" else x.exercise
                counts[v] = counts.get(v, 0) + 1
        top = sorted(counts.values(), reverse=True) + [0]
        if not counts or top[0] == top[1]:   # no clear habit yet
            return None
        correct = max(counts, key=counts.get)
        opts, ans = _options(correct, pool, rng)
        return Question("", kind, text, opts, ans, qt, ev, False)
    d = rng.choice(days)
    anchored = rng.random() < anchored_share and d in unique
    prefix = f"On the day {_anchor(d)}, " if anchored else ""
    if kind == "EntityLog":
        obj = rng.choice(list(OBJECTS))
        spot, t = d.placements[obj]
        qt = _query_time(t, bucket, end, rng)
        if qt is None:
            return None
        if not anchored:   # "last" question: evidence = the latest placement before the query
            later = [x for x in days if x.placements[obj][1] < qt and x.placements[obj][1] > t]
            if later:
                return None
            text = f"Where did I last leave the {obj}?"
        else:
            text = f"{prefix}where did I leave the {obj}?"
        opts, ans = _options(SPOTS[spot][0], [SPOTS[x.placements[obj][0]][0] for x in days] + [v[0] for v in
                                                                                            SPOTS.values()], rng)
        return Question("", kind, text, opts, ans, qt, [t], anchored)
    if kind == "EventRecall":
        qt = _query_time(d.event_time, bucket, end, rng)
        if qt is None or sum(x.event == d.event for x in days if x.event_time < qt) > 1:
            return None
        opts, ans = _options(DOING[d.event_doing], list(DOING.values()), rng)
        return Question("", kind, f"What was I doing when {EVENTS[d.event][1]}?", opts, ans, qt, [d.event_time],
                        False)
    if kind == "RelationMap":
        if not d.exercise_times or not anchored:
            return None
        qt = _query_time(max(d.exercise_times), bucket, end, rng)
        if qt is None:
            return None
        opts, ans = _options(d.exercise_partner, PEOPLE, rng)
        return Question("", kind, f"{prefix}who did I {EXERCISES[d.exercise][1]} with?", opts, ans, qt,
                        list(d.exercise_times), True)
    # TaskMaster
    if not anchored:
        return None
    person, task, t = rng.choice(d.tasks)
    if sum(p == person for p, _, _ in d.tasks) > 1:
        return None
    qt = _query_time(t, bucket, end, rng)
    if qt is None:
        return None
    opts, ans = _options(task, list(TASKS), rng)
    return Question("", kind, f"{prefix}what did {person} ask me to do?", opts, ans, qt, [t], True)
