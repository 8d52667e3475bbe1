#!/usr/bin/env python3
"""Regenerate corpus.tsv: realistic household utterances labelled with their expected route.

Deterministic (seeded). Run: python3 gen_corpus.py > corpus.tsv
The hand-written lines at the end are phrasings collected while testing; keep adding to them.
"""
import random

rng = random.Random(7702)
out = []

def add(route, text):
    out.append((route, text))

areas = ["kitchen", "living room", "bedroom", "office", "hall", "bathroom", "garage", "dining room", "kids room", "basement"]
devices = ["lights", "light", "lamp", "ceiling light", "fan", "floor lamp", "desk lamp", "tv", "heater", "kettle", "fairy lights", "bedside lamp", "reading light", "spotlights"]
polite = ["", "please ", "can you ", "could you ", "hey barnabee ", "barnabee please "]
tail = ["", " please", "", "!", ".", " thanks"]
tail_nothanks = ["", " please", "", "!", "."]

# --- action ---
for _ in range(260):
    a = rng.choice(areas); d = rng.choice(devices); onoff = rng.choice(["on", "off"])
    form = rng.randrange(7)
    if form == 0: t = f"{rng.choice(polite)}turn {onoff} the {a} {d}{rng.choice(tail_nothanks)}"
    elif form == 1: t = f"{rng.choice(polite)}turn the {a} {d} {onoff}{rng.choice(tail_nothanks)}"
    elif form == 2: t = f"{rng.choice(polite)}switch {onoff} the {d} in the {a}{rng.choice(tail_nothanks)}"
    elif form == 3: t = f"{a} {d} {onoff}"
    elif form == 4: t = f"{rng.choice(polite)}turn {onoff} the {d}{rng.choice(tail_nothanks)}"
    elif form == 5: t = f"{d} {onoff} in the {a}"
    else: t = f"{rng.choice(polite)}switch the {d} {onoff}"
    add("action", t[0].upper() + t[1:] if rng.random() < 0.5 else t)
covers = ["window", "blinds", "curtains", "shades", "garage door", "hall window", "skylight window", "awning"]
for _ in range(80):
    v = rng.choice(["open", "close", "raise", "lower", "shut"]); c = rng.choice(covers); a = rng.choice(areas)
    t = rng.choice([f"{v} the {c}", f"{v} the {a} {c}", f"{rng.choice(polite)}{v} the {c} in the {a}"])
    add("action", t)
for _ in range(40):
    v = rng.choice(["lock", "unlock"]); d = rng.choice(["front door", "back door", "kitchen door", "garage door", "door"])
    add("action", f"{rng.choice(polite)}{v} the {d}{rng.choice(tail_nothanks)}")
for _ in range(70):
    a = rng.choice(areas); n = rng.choice([10, 20, 25, 30, 40, 50, 60, 75, 80, 100])
    form = rng.randrange(4)
    if form == 0: t = f"dim the {a} lights to {n}%"
    elif form == 1: t = f"set the {a} light to {n} percent"
    elif form == 2: t = f"{rng.choice(polite)}set the {a} lamp to {n}%"
    else: t = f"brighten the {a} lights"
    add("action", t)
for _ in range(30):
    n = rng.choice([18, 19, 20, 21, 22, 23])
    add("action", rng.choice([f"set the thermostat to {n} degrees", f"set the temperature to {n} degrees", f"set the {rng.choice(areas)} heater to {n} degrees"]))
for _ in range(40):
    a = rng.choice(areas); d = rng.choice(["light", "lights", "fan", "heater", "tv", "window", "door"])
    st = {"light": "on", "lights": "on", "fan": "on", "heater": "on", "tv": "on", "window": "open", "door": "locked"}[d]
    if rng.random() < 0.5: st = {"on": "off", "open": "closed", "locked": "unlocked"}[st]
    add("action", f"{'are' if d.endswith('s') else 'is'} the {a} {d} {st}{rng.choice(['', '?'])}")

# --- instant ---
time_q = ["what time is it", "What's the time?", "what is the time", "do you know the time", "tell me the time", "time please", "what time is it now", "what's the current time", "hey barnabee what time is it", "Barnabee, what time is it?", "do you have the time", "what is the exact time", "the time please", "what hour is it"]
date_q = ["what's the date", "what is today's date", "what day is it", "what day is today", "What's today?", "which day is it", "what is the date today", "what day of the week is it", "what month is it", "what year is it", "today's date please", "what's the date today?"]
greet = ["hello", "hi", "hey", "good morning", "good afternoon", "good evening", "hi there", "hello barnabee", "hey there", "how are you", "good morning barnabee", "howdy", "hiya", "how are you doing today", "hi barnabee how are you"]
thanks = ["thanks", "thank you", "thank you very much", "thanks a lot", "cheers", "ok thanks", "thank you barnabee", "much appreciated"]
bye = ["bye", "goodbye", "good night", "see you later", "that's all", "nothing else", "bye bye"]
for _ in range(90): add("instant", rng.choice(time_q) + rng.choice(["", "?", ""]))
for _ in range(70): add("instant", rng.choice(date_q))
for _ in range(60): add("instant", rng.choice(greet) + rng.choice(["", "!", "."]))
for _ in range(30): add("instant", rng.choice(thanks) + rng.choice(["", "!"]))
for _ in range(20): add("instant", rng.choice(bye))
nums = ["1", "2", "3", "5", "10", "15", "20", "25", "30", "45", "one", "two", "five", "ten", "fifteen", "twenty", "thirty", "forty five"]
for _ in range(90):
    n = rng.choice(nums); u = rng.choice(["minute", "minutes", "second", "seconds", "hour"])
    form = rng.randrange(6)
    if form == 0: t = f"set a timer for {n} {u}"
    elif form == 1: t = f"{rng.choice(polite)}start a {n} minute timer"
    elif form == 2: t = f"timer for {n} {u}"
    elif form == 3: t = f"set a {n} minute timer for the pasta"
    elif form == 4: t = f"remind me in {n} minutes"
    else: t = f"set a timer for half an hour"
    add("instant", t)
for _ in range(25):
    add("instant", rng.choice(["cancel the timer", "stop the timer", "cancel my timer", "delete the timer", "how much time is left", "how long is left on the timer", "what timers are running", "how much time is left on my timer", "cancel all timers"]))

# --- memory ---
people = ["Ana", "Tom", "grandma", "Luca", "Mia", "the neighbour", "Dad", "Mum"]
facts = ["{p}'s dentist is on Friday", "{p}'s birthday is on March 3rd", "the plumber comes on Tuesday", "the wifi password is on the fridge",
         "{p} is allergic to peanuts", "the spare key is under the blue pot", "{p} likes oat milk", "we parked on level 3",
         "the car needs an oil change in May", "{p}'s school play is next Thursday", "the recycling goes out on Wednesdays", "{p} prefers tea to coffee"]
for _ in range(110):
    f = rng.choice(facts).format(p=rng.choice(people))
    lead = rng.choice(["remember that ", "Remember that ", "please remember that ", "don't forget that ", "make a note that ", "note that ", "remember ", "for the record, "])
    add("memory", lead + f + rng.choice(["", "."]))
for _ in range(30):
    add("memory", rng.choice(["remind me to ", "remember to ", "don't forget to "]) + rng.choice(["call grandma", "buy milk", "water the plants", "take the bins out", "pay the electricity bill", "book the vet", "turn off the oven"]))
recall = ["when is {p}'s dentist", "when is {p}'s birthday", "what did I tell you about the wifi password", "do you remember where the spare key is",
          "what do you know about {p}", "where did I park", "what did I say about the plumber", "what's my wifi password", "what is {p}'s favourite food",
          "do you remember what {p} is allergic to", "remind me what the plumber said", "when was {p}'s last appointment", "where is {p}'s passport",
          "what's our anniversary", "did I tell you about the school play", "who is {p}'s doctor"]
for _ in range(90):
    add("memory", rng.choice(recall).format(p=rng.choice(people)) + rng.choice(["", "?"]))

# --- interaction ---
chat = ["why is the sky blue", "tell me a joke", "what is the meaning of life", "how do airplanes fly", "explain quantum computing simply",
        "who was Ada Lovelace", "what should I cook tonight", "can you recommend a good book", "how far is the moon", "what's the capital of Australia",
        "write a short poem about autumn", "tell me something interesting", "how do I get a red wine stain out", "what rhymes with orange",
        "is it going to rain tomorrow", "what's a good name for a cat", "how many cups are in a litre", "play some jazz", "who won the world cup in 2010",
        "how does photosynthesis work", "what is a black hole", "tell me about the Roman empire", "can you help me plan a birthday party",
        "what are the planets in the solar system", "translate good morning into Spanish", "how long should I boil an egg",
        "what's the difference between a frog and a toad", "suggest a movie for tonight", "how tall is the Eiffel tower", "what do cats dream about",
        "why do we yawn", "how do vaccines work", "what's 15 times 23", "give me a fun fact", "tell me a bedtime story", "what is the speed of light",
        "how are rainbows made", "what should I name my plant", "blorp", "I'm bored", "sing me a song", "what's the weather like on Mars",
        "can you explain how tides work", "how old is the universe", "what language do they speak in Brazil"]
for _ in range(260):
    add("interaction", rng.choice(chat) + rng.choice(["", "?", ""]))

# hand-written
for line in """action\tTurn off the lights in the kitchen
action\tturn on the lights in the office
action\tturn on the bedside lamp
action\tturn off the fairy lights
action\tclose the hall window
action\tlock the kitchen door
action\tturn off the living room fan
action\tturn on the ceiling lights
instant\tWhat time is it?
memory\tRemember that Ana's dentist is on Friday
interaction\tWhy is the sky blue?
interaction\twhat is the meaning of life
memory\twhen is Ana's dentist?
instant\tset a timer for 10 minutes
action\tset the kitchen lights to red
action\tmake the bedroom lamp blue
action\tturn the office lights warm white
action\twhat is the temperature in the living room
action\twhat's the humidity in the bathroom
action\thow warm is it in the kids room
action\tturn it off
action\tswitch them on
action\tturn that off please
action\tturn on the kettle
memory\twhat is Leo allergic to?
memory\tis Leo allergic to anything
memory\twhat does Ana like for breakfast
memory\twhat did I ask you about dinner?
memory\twhat were we talking about yesterday
memory\twhat did we talk about this morning
""".strip().splitlines():
    r, t = line.split("\t"); add(r, t)

print("# route<TAB>utterance; generated by gen_corpus.py (seed 7702) plus hand-written lines")
for r, t in out:
    print(f"{r}\t{t}")
