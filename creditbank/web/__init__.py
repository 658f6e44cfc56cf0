"""Pages for people: server-rendered Jinja2, phone first, Chinese and English, HTML errors."""
