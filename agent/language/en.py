"""English: the words the parsers read and every sentence the bot says by default.

This is the one place for weekday, month and number words, the phrases of the
conversation intents every deployment shares (asking for a person, goodbye,
"forget it", "say that again"), and the default sentences. A deployment
overrides any sentence in agent.yaml under `messages:`; business words, flows and
replies belong in the config, never here.
"""

from __future__ import annotations

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january", "february", "march", "april", "may", "june", "july",
    "august", "september", "october", "november", "december",
)  # fmt: skip
ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
    "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
    "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
UNITS = {
    "zero": 0, "oh": 0, "o": 0, "nought": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19,
}  # fmt: skip
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
REPEATS = {"double": 2, "triple": 3}
SCALES = {"hundred": 100, "thousand": 1000}
DIGIT_WORDS = frozenset(w for w, v in UNITS.items() if v < 10)
NUMBER_WORDS = tuple([w for w in UNITS if w not in ("oh", "o", "nought")] + list(TENS) + list(SCALES))
# what ASR writes for a digit word in a run of digits ("order for 112" = 4112)
DIGIT_HOMOPHONES = {"for": "4", "to": "2", "too": "2", "won": "1", "ate": "8", "oh": "0"}
# a question about what a task needs, costs or takes, not a request to do it: "what do I need to bring to
# register a birth?", "do I need a permit for a skip?" (answered from the documents, even with a task's phrase)
ABOUT_A_TASK = (
    r"\b(what (?:do|should|must|would) (?:i|we) (?:need|bring|have|take)|what (?:documents|papers|id)\b|"
    r"what(?:'s| is) needed|do (?:i|we) need (?:to|a|an|any|permission|a permit)|is there a (?:fee|charge)|"
    r"how much (?:is|does|do|would|will)|how long (?:does|do|will|would)|am i allowed|are we allowed)"
)
# other words callers use for the verbs tasks are asked with, read as those verbs when matching a request
# to a task's phrases and examples ("call off my service booking" asks to cancel it)
REQUEST_SYNONYMS = {
    "call off": "cancel", "scrap": "cancel", "scrub": "cancel", "knock on the head": "cancel",
    "reschedule": "move", "rearrange": "move", "push back": "move", "put back": "move", "bring forward": "move",
    "reserve": "book", "pencil in": "book", "fit in": "book", "squeeze in": "book",
    "tell you about": "report", "let you know about": "report", "make you aware of": "report",
}  # fmt: skip
# a part of the day and the words callers use for it
PARTS_OF_DAY = {
    "morning": ("morning", "breakfast"),
    "afternoon": ("afternoon", "lunch", "lunchtime", "midday"),
    "evening": ("evening", "tonight", "dinner", "supper", "night"),
}

# Conversation intents every deployment shares: regular expressions, matched case-insensitively.
INTENT_PATTERNS = {
    "injection": r"\b(ignore (all |your |the |any |previous |prior )*(instructions|rules|prompt)|system prompt|you are now|pretend (to be|you are|you're)|jailbreak|developer mode|disregard (your|all|the))\b",
    "identity": r"\b(who (am i (talking|speaking) to|are you)|what are you\W*$|are you (a |an )?(robot|bot|machine|human|real|person|computer|ai|recording|answering (service|machine))|am i (talking|speaking|through) (to|with) (a |an )?(robot|bot|machine|human|real|person|computer)|(is|are) (this|that|it|there|you) (a |an )?(real person|person|robot|bot|machine|recording|computer|automated|an ai|ai|human)( or|\W*$| on the (other|line))|you'?re not (a |an )?(real )?(person|human))",
    "human": r"\b(human|real person|a person|someone real|somebody real|operator|receptionist|representative|(talk|speak) (to|with) (a|an|the|someone|somebody|your|anybody|anyone)\b|live agent|an agent|a colleague|put me through|transfer me|(have|get) a (quick |little |brief )?word with|^\W*agent\W*$)\b",
    "goodbye": r"\b(bye|goodbye|good bye|that'?s all|that is all|nothing else|hang up|that'?s everything|i'?m done)\b",
    "thanks": r"^\W*(ok(ay)?,? )?(thank you|thanks|thank you very much|many thanks|great,? thanks?|cheers|perfect,? thanks?)\W*$",
    "cancel_task": r"\b(forget (it|that|about it)|never ?mind|don'?t bother|leave it|stop that|scrap that|skip it)\b",
    "repeat": r"\b(say (that|it) again|repeat (that|it|yourself)|come again|what did you say|pardon( me)?|didn'?t (catch|hear) (that|you|it)|one more time)\b",
    "capabilities": r"\b(what (else )?can you( \w+)? (do|help|sort)|what do you do|how can you help|what are my options|what (else |things )?can i (ask|use)|what are you able|what (kind|sort)s? of (things|stuff)|what('?s| is) this (line|number|service) for|how does this work)\b",
}  # fmt: skip
# Example utterances of the shared intents: an utterance close to one of them means that intent
# (the same similarity the tasks' examples use), so wordings the patterns above miss still land.
INTENT_EXAMPLES = {
    "human": [
        "can I speak to someone",
        "I'd like to talk to a member of staff",
        "put me through to somebody",
        "is there anyone I can talk to",
        "let me speak to a manager",
        "I want a real human being",
        "get me the front desk",
        "can I talk to one of your team",
    ],
    "goodbye": [
        "that's it thanks bye",
        "okay I'll let you go now",
        "speak to you later",
        "take care, bye bye",
        "sorry wrong number",
        "I dialled the wrong number",
        "great, see you then",
        "cheers, that's everything",
        "all sorted, bye for now",
    ],
    "repeat": [
        "sorry what was that",
        "can you repeat that please",
        "could you say that again more slowly",
        "I missed that",
        "I didn't hear you",
        "pardon",
        "what did you say",
        "once more please",
        "you cut out there",
        "say the last bit again",
    ],
    "cancel_task": [
        "forget it",
        "never mind",
        "don't worry about it",
        "I've changed my mind",
        "let's not bother",
        "stop, I don't want to do that",
        "scrap that",
        "cancel that, start again",
        "I'll sort it out another time",
    ],
    "capabilities": [
        "what can you help me with",
        "what can you do",
        "what kind of things do you handle",
        "what is this line for",
        "how does this work",
        "what can I ask you",
        "what are my options",
        "what services does this line offer",
    ],
    "identity": [
        "am I talking to a robot",
        "is this a real person",
        "are you a machine",
        "is this automated",
        "is this an AI",
        "are you a computer",
        "is this a recording",
        "who am I speaking to",
        "are you human",
        "you're not a real person are you",
    ],
}
# how upset callers say it, whatever the business (the config adds its own upset_phrases)
UPSET = r"\b(fed up|sick (and tired )?of|had enough|fuming|furious|livid|disgust(ed|ing)|disgrace|unacceptable|ridiculous|useless|pathetic|stupid|waste of (my )?time|nobody (ever )?(answers|helps|calls|cares|gets back)|never (again|answers)|(is|what) (a|an absolute|a complete|such a) joke|(an absolute|a complete) joke|appalling|outrageous|(want|going) to complain|(make|making|file) a (formal )?complaint|ripped (me )?off|lied to|are you kidding|my lawyer|sort this out now)\b"
# an emergency in the caller's own words, whatever the business (the config adds its emergency_phrases):
# something dangerous (DANGER) that is happening now (HAPPENING), not asked about ("what if…", "is it covered…")
DANGER = r"\b(bleed(ing|s)?|blood|unconscious|not breathing|can'?t breathe|on fire|fire|smoke|collapsed?|seizure|choking|(hit|knocked (down|over)|run over) by|won'?t (get up|wake up|wake|stand up)|can'?t (get up|stand up)|crash(ed)?|accident|pouring|gushing|flooding|sparks|sparking|fell (over|down)|fallen (over|down)|c[oa]me down|poison(ed)?|stuck(?! (?:at|in) (?:work|traffic|a meeting|meetings|the office|town))|stranded|trapped|burst|hurt|injured)\b"
HAPPENING = r"(^\W*help\b|\b(just|right now|now|at the moment|as we speak|urgent(ly)?|(is|are|'s|'re) (lying|hanging|pouring|gushing|leaking|sparking|burning|smoking|bleeding|coming)|won'?t (get up|wake|stop)|can'?t (get up|stop|stand))\b)"
HYPOTHETICAL = r"\b(if|in case|what happens|would (i|it|you|that)|am i covered|is (it|that) covered)\b"
# a request anywhere in the sentence ("my car's making a horrible noise, can someone check it"): not upset by tone alone
REQUEST = r"\?|\b(can|could|would|will|do|does|did|is|are|how|what|when|where|which)\s+(you|i|we|someone|somebody|anyone|it|they|there|that|this)\b|\bhow (much|soon|long|do)\b"
YES = r"^\W*(yes|yeah|yep|yup|ya|sure|correct|right|please do|please|ok(ay)?|that'?s (fine|right|good|correct|great|it)|sounds good|perfect|go ahead|do it|great|absolutely|definitely|of course|affirmative|that works|fine)\b"
NO = r"^\W*(no|nope|not really|nah|don'?t|wrong|not that|neither|negative|that'?s (wrong|not right|incorrect))\b"
# corrections: "no, I said ...", "I meant ...", "actually ..." (the new value follows)
CORRECTION = r"\b(i said|i meant|i mean|actually|sorry,? (it'?s|i meant)|not .{1,20}, )\b"
FILLERS = frozenset(
    {"uh", "um", "erm", "hmm", "mm", "er", "ah", "like", "so", "well", "okay", "ok", "yeah", "hi", "hello"}
)
# words of a correction or an apology: never part of a name ("oh no wait, Wednesday, sorry")
CORRECTION_WORDS = frozenset({"wait", "sorry", "actually", "no", "oops", "hang", "mean", "meant", "instead", "rather"})
# said while the bot talks, these only show the caller is listening: the bot pauses, then goes on
BACKCHANNEL = r"^\W*((m+-?)?h?m+-?h?m+|uh-?huh|hmm+|mhm+|mm+|uh+|um+)\W*$"
# an utterance that stops on one of these has not finished (the caller paused before what they meant
# to say: "my account number is ... 4471"); the turn is held a moment longer, like a half-read number
UNFINISHED = r"\b(is|are|was|were|my|your|the|a|an|and|or|but|to|of|for|with|from|at|on|in|um+|uh+|er+|erm|because|it's|that's)\W*$"
# no topic on their own: "am"/"pm" alone matched the opening hours ("8 am") when a mumble was heard as "I am"
# "I'd like to", "we've got": a pronoun's contraction tells no part of a caller's story
PRONOUN_CONTRACTION = r"(?:i|we|you|they|he|she|it)'(?:d|ve|ll|re|m|s)"
STOPWORDS = frozenset(
    """a an and are as at be by can could do does for from have how i if in is it me my of on or our
    please so that the their there this to up us was we what when where which who will with would you your
    hi hello yes no okay ok um uh tell know like want need just about that's it's i'm right
    am pm hmm hm mm mhm uhm er erm ah oh huh yeah yep m s t ll re ve d
    calling ringing phoning""".split()
)

# Default sentences; every one can be overridden in agent.yaml `messages:`. {fields} are filled in.
SENTENCES = {
    "not_understood": "Sorry, I didn't catch that. Could you say it again? You can also press 0 to speak to a person.",
    "too_many_misunderstandings": "I'm sorry, I'm having trouble understanding. Let me connect you to a colleague.",
    "caller_upset": "I'm sorry about this. Let me put you through to a colleague who can help.",
    "injection": "I can only help with questions about {business_name}. What can I do for you?",
    "welcome_back": "Alright. Is there anything else I can help you with?",
    "anything_else": "Is there anything else I can help you with?",
    "you_are_welcome": "You're welcome! Is there anything else I can help you with?",
    "no_problem": "No problem. How can I help you?",
    "go_on": "Sure. What can I help you with?",
    "task_cancelled": "Okay, I've stopped that. Is there anything else I can help you with?",
    "nothing_to_repeat": "I haven't said anything yet. How can I help you?",
    "identity": "I'm the virtual assistant of {business_name}, an automated system. I can help with {capabilities}. If you'd like a person, just say so.",
    "capabilities": "I can help with {capabilities}. I can also answer questions about {business_name}, or put you through to a colleague.",
    "capabilities_none": "I can answer questions about {business_name}, or put you through to a colleague.",
    "slot_not_understood": "Sorry, I didn't get that.",
    "give_up_slot": "I'm sorry, I couldn't get that. Let me connect you to a colleague who can help.",
    "confirm_unclear": "Sorry, was that a yes or a no?",
    "what_to_change": "What would you like to change?",
    "confirm_default": "Shall I go ahead?",
    "keep_as_is": "Okay, I've left it as it is. Is there anything else I can help you with?",
    "requested_time_unavailable": "That exact time isn't free.",
    "requested_day_unavailable": "That day is fully booked.",
    "tool_failed": "Sorry, I can't do that right now.",
    "tool_not_found": "Sorry, I couldn't find that.",
    "offer_human": "Would you like me to connect you to a colleague?",
    "back_to_task": "Now, back to {task}.",
    "ask_slot": "What's the {slot}, please?",
    "ask_phone": "What's the best phone number to reach you on?",
    "unsure_answer": "I'm not sure I have exactly that, but here is what I can tell you.",
    "which_task": "Sure. Which would you like: {first}, or {second}?",
    "not_verified": "Before I can help with that, I need to check it's you.",
    "keypad_hint": "You can also type it on your keypad and press hash.",
    "digits_wrong_length": "That was {count} digits; I need {length}.",
    "survey_question": "Before you go: on a scale of one to five, five being the best, how was this call? Say a number or press it on your keypad.",
    "survey_retry": "Sorry, please give a number from one to five.",
    "survey_thanks": "Thank you for your feedback.",
}
# what recognition is told when the bot has just asked for a number (Whisper's prompt)
DIGITS_HINT = "The caller reads out a number, digit by digit or in groups: 4 1 1 2, 7 7 0 3 9, 0 4 1 5 5 5 0 1 2 3."
CHOICE_HINT = "The caller answers with one of: {choices}."
# ... and when it has asked the post-call survey (no example digits: Whisper would copy them)
SCORE_HINT = "The caller answers with a number from one to five."
# how slot values are said back
AND = "and"
