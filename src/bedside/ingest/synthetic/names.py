"""Embedded word lists for synthetic identities: names, streets and places.

Everything here is public, generic vocabulary; a generated identity is a random combination of
these words, numbers and places, so it does not describe a real person. Phone numbers are drawn
from the 555-0100..555-0199 range reserved for fiction, SSNs from the never-issued 9xx area, and
e-mail addresses use the reserved ``example.com`` domain.
"""

from __future__ import annotations

GIVEN_FEMALE: tuple[str, ...] = (
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica",
    "Sarah", "Karen", "Lisa", "Nancy", "Betty", "Sandra", "Margaret", "Ashley", "Kimberly",
    "Emily", "Donna", "Michelle", "Carol", "Amanda", "Melissa", "Deborah", "Stephanie",
    "Dorothy", "Rebecca", "Sharon", "Laura", "Cynthia", "Amy", "Kathleen", "Angela",
    "Shirley", "Brenda", "Emma", "Anna", "Pamela", "Nicole", "Samantha", "Katherine",
    "Christine", "Helen", "Debra", "Rachel", "Carolyn", "Janet", "Maria", "Catherine",
    "Heather", "Diane", "Olivia", "Julie", "Joyce", "Victoria", "Ruth", "Virginia", "Lauren",
    "Kelly", "Christina", "Joan", "Evelyn", "Judith", "Andrea", "Hannah", "Megan", "Cheryl",
    "Jacqueline", "Martha", "Madison", "Teresa", "Gloria", "Sara", "Janice", "Ann", "Kathryn",
    "Abigail", "Sophia", "Frances", "Jean", "Alice", "Judy", "Isabella", "Julia", "Grace",
    "Amber", "Denise", "Danielle", "Marilyn", "Beverly", "Charlotte", "Natalie", "Theresa",
    "Diana", "Brittany", "Doris", "Kayla", "Alexis", "Lori", "Marie", "Mei", "Priya", "Aaliyah",
    "Guadalupe", "Ximena", "Leilani", "Fatima", "Yuki", "Ngozi", "Rosa",
)  # fmt: skip

GIVEN_MALE: tuple[str, ...] = (
    "James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas",
    "Christopher", "Charles", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven",
    "Andrew", "Paul", "Joshua", "Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald",
    "Jason", "Edward", "Jeffrey", "Ryan", "Jacob", "Gary", "Nicholas", "Eric", "Jonathan",
    "Stephen", "Larry", "Justin", "Scott", "Brandon", "Benjamin", "Samuel", "Gregory",
    "Alexander", "Patrick", "Frank", "Raymond", "Jack", "Dennis", "Jerry", "Tyler", "Aaron",
    "Jose", "Adam", "Nathan", "Henry", "Zachary", "Douglas", "Peter", "Kyle", "Noah", "Ethan",
    "Jeremy", "Walter", "Christian", "Keith", "Roger", "Terry", "Austin", "Sean", "Gerald",
    "Carl", "Harold", "Dylan", "Arthur", "Lawrence", "Jordan", "Jesse", "Bryan", "Billy",
    "Bruce", "Gabriel", "Joe", "Logan", "Alan", "Juan", "Albert", "Willie", "Elijah", "Wayne",
    "Randy", "Vincent", "Mason", "Roy", "Ralph", "Bobby", "Russell", "Bradley", "Philip",
    "Eugene", "Wei", "Raj", "Kwame", "Hiroshi", "Mateo", "Santiago", "Keoni", "Omar", "Tariq",
)  # fmt: skip

FAMILY: tuple[str, ...] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas",
    "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris",
    "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King",
    "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson",
    "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips",
    "Evans", "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart",
    "Morris", "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper",
    "Peterson", "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward",
    "Richardson", "Watson", "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza",
    "Ruiz", "Hughes", "Price", "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long",
    "Ross", "Foster", "Jimenez", "Powell", "Jenkins", "Perry", "Russell", "Sullivan", "Bell",
    "Coleman", "Butler", "Henderson", "Barnes", "Gonzales", "Fisher", "Vasquez", "Simmons",
    "Romero", "Jordan", "Patterson", "Alexander", "Hamilton", "Graham", "Reynolds", "Griffin",
    "Wallace", "Moreno", "West", "Cole", "Hayes", "Bryant", "Herrera", "Gibson", "Ellis",
    "Tran", "Medina", "Aguilar", "Stevens", "Murray", "Ford", "Castro", "Marshall", "Owens",
    "Harrison", "Fernandez", "McDonald", "Woods", "Washington", "Kennedy", "Wells", "Vargas",
    "Henry", "Chen", "Freeman", "Webb", "Tucker", "Guzman", "Burns", "Crawford", "Olson",
    "Simpson", "Porter", "Hunter", "Gordon", "Mendez", "Silva", "Shaw", "Snyder", "Mason",
    "Dixon", "Munoz", "Hunt", "Hicks", "Holmes", "Palmer", "Wagner", "Black", "Robertson",
    "Boyd", "Rose", "Stone", "Salazar", "Fox", "Warren", "Mills", "Meyer", "Rice", "Schmidt",
    "Garza", "Daniels", "Ferguson", "Nichols", "Stephens", "Soto", "Weaver", "Ryan", "Gardner",
    "Payne", "Grant", "Dunn", "Kelley", "Spencer", "Hawkins", "Arnold", "Pierce", "Okafor",
    "Yamamoto", "Kahananui", "Begay", "Singh", "O'Brien", "Nakamura", "Haddad", "Kowalski",
)  # fmt: skip

STREETS: tuple[str, ...] = (
    "Maple", "Oak", "Pine", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park", "Main",
    "Church", "Walnut", "Spring", "Highland", "Chestnut", "Franklin", "Jefferson", "Lincoln",
    "Madison", "Willow", "Sunset", "Meadow", "River", "Forest", "Prospect", "Center", "Union",
    "Pleasant", "Summer", "Winter", "Mill", "School", "Water", "Bridge", "Grove", "Harbor",
    "Orchard", "Ridge", "Birch", "Liberty", "Adams", "Beacon", "Cherry", "Dogwood", "Hawthorne",
)  # fmt: skip
STREET_SUFFIXES: tuple[str, ...] = (
    "Street", "Avenue", "Road", "Lane", "Drive", "Court", "Place", "Way", "Terrace", "Circle",
)  # fmt: skip

#: Places: city, state, 3-digit ZIP prefix, phone area code, relative weight.
#: The hospital sits in Massachusetts; a few patients come from far away, including from every
#: HHS Safe Harbor restricted ZIP3 area (the last block), about 3% of patients in all.
PLACES: tuple[tuple[str, str, str, str, float], ...] = (
    ("Boston", "MA", "021", "617", 18.0),
    ("Cambridge", "MA", "021", "617", 8.0),
    ("Somerville", "MA", "021", "617", 6.0),
    ("Quincy", "MA", "021", "617", 6.0),
    ("Brockton", "MA", "023", "508", 5.0),
    ("Worcester", "MA", "016", "508", 7.0),
    ("Framingham", "MA", "017", "508", 4.0),
    ("Lowell", "MA", "018", "978", 5.0),
    ("Lynn", "MA", "019", "781", 4.0),
    ("Salem", "MA", "019", "978", 3.0),
    ("Springfield", "MA", "011", "413", 4.0),
    ("Pittsfield", "MA", "012", "413", 1.5),
    ("New Bedford", "MA", "027", "508", 3.0),
    ("Plymouth", "MA", "023", "508", 2.5),
    ("Nashua", "NH", "030", "603", 2.5),
    ("Manchester", "NH", "031", "603", 2.5),
    ("Providence", "RI", "029", "401", 3.0),
    ("Hartford", "CT", "061", "860", 1.5),
    ("New York", "NY", "100", "212", 1.5),
    ("Charlestown", "NH", "036", "603", 0.3),
    ("Beecher Falls", "VT", "059", "802", 0.15),
    ("Fishers Island", "NY", "063", "631", 0.15),
    ("New York", "NY", "102", "212", 0.15),
    ("Washington", "DC", "203", "202", 0.15),
    ("Two Harbors", "MN", "556", "218", 0.15),
    ("Valentine", "NE", "692", "402", 0.15),
    ("Dalhart", "TX", "790", "806", 0.15),
    ("Yellowstone National Park", "WY", "821", "307", 0.15),
    ("Rawlins", "WY", "823", "307", 0.15),
    ("Jackson", "WY", "830", "307", 0.15),
    ("Kemmerer", "WY", "831", "307", 0.15),
    ("Socorro", "NM", "878", "575", 0.15),
    ("Truth or Consequences", "NM", "879", "575", 0.15),
    ("Tucumcari", "NM", "884", "575", 0.15),
    ("Alamo", "NV", "890", "775", 0.15),
    ("Ely", "NV", "893", "775", 0.15),
)
